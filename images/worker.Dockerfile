# syntax=docker/dockerfile:1
# A workpath worker with the example routines: `workpath worker examples.reports`.
# Build from the repository root:  docker build -f images/worker.Dockerfile -t workpath/worker:0.1.0 .
# Your own worker image: FROM this one, COPY your modules into /app, run `workpath worker your.module`.
# Dependencies are pinned by images/constraints.txt. Without an index (as the node test tier builds it, with buildah):
#   --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links images/wheels"   (wheels of those pins put there)

FROM python:3.12-slim AS build
# Reproducible builds: pip's .pyc files and useradd's /etc/shadow take this time instead of now.
ARG SOURCE_DATE_EPOCH
ARG PIP_INSTALL_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CONSTRAINT=/src/images/constraints.txt
RUN python -m venv /opt/workpath
WORKDIR /src
COPY images/constraints.txt images/worker_only.py images/
COPY images/wheels/ images/wheels/
COPY pyproject.toml README.md ./
COPY worker/ worker/
# The worker package only: no operator code, no kopf, no Kubernetes client, no `workpath operator` command.
RUN python images/worker_only.py pyproject.toml \
    && /opt/workpath/bin/pip install '.[speed]' ${PIP_INSTALL_OPTIONS}

FROM python:3.12-slim
# Reproducible builds: pip's .pyc files and useradd's /etc/shadow take this time instead of now.
ARG SOURCE_DATE_EPOCH
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
