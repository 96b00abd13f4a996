# syntax=docker/dockerfile:1
# A workpath worker with the example routines: `workpath worker examples.reports`.
# Build from the repository root:  docker build -f images/worker.Dockerfile -t workpath/worker:0.1.0 .
# Your own worker image: FROM this one, COPY your modules into /app, run `workpath worker your.module`.

FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/workpath
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY operator/ operator/
# The worker package only (no kopf, no Kubernetes client); uvloop when it installs.
RUN /opt/workpath/bin/pip install '.[speed]'

FROM python:3.12-slim
ENV PATH=/opt/workpath/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/workpath /opt/workpath
RUN groupadd --system --gid 10001 workpath \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent workpath
# Routine modules are imported from the working directory (`workpath worker --app-dir`, default ".").
WORKDIR /app
COPY examples/ examples/
USER 10001:10001
ENTRYPOINT ["workpath"]
CMD ["worker", "--help"]
