# syntax=docker/dockerfile:1
# The workpath operator: kopf handlers and the directive service, `workpath operator ...`.
# Build from the repository root:  docker build -f images/operator.Dockerfile -t workpath/operator:0.1.0 .
# Dependencies are pinned by images/constraints.txt. Without an index (as the node test tier builds it, with buildah):
#   --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links images/wheels"   (wheels of those pins put there)

FROM python:3.12-slim AS build
# Reproducible builds: pip's .pyc files and useradd's /etc/shadow take this time instead of now.
ARG SOURCE_DATE_EPOCH
ARG PIP_INSTALL_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CONSTRAINT=/src/images/constraints.txt
RUN python -m venv /opt/workpath
WORKDIR /src
COPY images/constraints.txt images/
COPY images/wheels/ images/wheels/
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY operator/ operator/
RUN /opt/workpath/bin/pip install '.[operator,speed]' ${PIP_INSTALL_OPTIONS}

FROM python:3.12-slim
# Reproducible builds: pip's .pyc files and useradd's /etc/shadow take this time instead of now.
ARG SOURCE_DATE_EPOCH
# Python writes nothing at run time: the root filesystem is read-only in the chart.
ENV PATH=/opt/workpath/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/workpath /opt/workpath
# A numeric user, so that the chart's runAsNonRoot can verify it; the chart's runAsUser is the same uid.
RUN groupadd --system --gid 10001 workpath \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent workpath
USER 10001:10001
WORKDIR /tmp
EXPOSE 7740
ENTRYPOINT ["workpath"]
CMD ["operator", "--help"]
