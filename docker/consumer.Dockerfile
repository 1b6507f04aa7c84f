# syntax=docker/dockerfile:1
# Consumer service image: the KCL MultiLangDaemon (Java 17) with one Python record processor per
# shard lease, /metrics, /healthz and /readyz on port 9108.
#
#   docker build -f docker/consumer.Dockerfile -t dropout-consumer .
#
# Stages: `jre` only provides a headless Java 17 runtime (Eclipse Temurin, copied as one folder,
# no apt); `build` installs the pinned requirements into a virtualenv; the final stage copies the
# two folders onto a clean slim Python, so no compiler, pip cache or build file ships.

# Base images by digest: Renovate (renovate.json) keeps these ARG defaults current. A build
# against local copies that carry the tag but not this digest (a mirror, stand-in images)
# overrides them, e.g. --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm.
#checkov:skip=CKV_DOCKER_7:The FROM images are ARGs whose defaults are pinned to tag@sha256 digests (tests/deploy checks them); checkov does not resolve ARGs.
ARG JRE_IMAGE=eclipse-temurin:17-jre-noble@sha256:900322f4cc1b9da9d730ae4bb56d8a1dabbaa9cfa32809fc8b542b600370a045
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${JRE_IMAGE} AS jre

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Requirements first: this layer is rebuilt only when the pins change, not on every code edit.
COPY requirements/consumer.txt /tmp/requirements.txt
# Then only what runs stays (docker/README.md, "Size"): feature-engine declares statsmodels,
# yet neither it nor this code imports it, nor patsy, formulaic, interface-meta and wrapt,
# which only statsmodels needs; pip, setuptools and wheel install and never run; the packages'
# test suites, C headers and Cython sources are not run time. The bytecode pip compiled stays:
# without it every shard processor would compile its imports again at each start.
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && pip uninstall --yes --quiet statsmodels patsy formulaic interface-meta wrapt \
    && python -m pip uninstall --yes --quiet pip setuptools wheel \
    && find /opt/venv -type d -name tests -prune -exec rm -rf {} + \
    && find /opt/venv -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cpp' \
       -o -name '*.pxd' -o -name '*.pyx' \) -delete

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dropout-consumer" \
      org.opencontainers.image.description="Student dropout early warning: KCL stream consumer" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/opt/venv/bin:/opt/java/openjdk/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9108 \
    KCL_PROPERTIES_PATH=/var/lib/consumer/kcl.properties \
    MODEL_CACHE_DIR=/var/lib/consumer/models \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/consumer/metrics \
    CONSUMER_STATE_DIR=/var/lib/consumer/state
# A fixed non-root uid/gid; the writable state folder is the only one it owns.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/consumer \
    && chown app:app /var/lib/consumer
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY common/ ./common/
COPY consumer/ ./consumer/
COPY docker/env_from_files.py /opt/dropout/
# With a read-only root file system (the ECS task definition sets one) these two paths are the
# writable volumes; declaring them here makes Fargate copy their ownership into the volume.
VOLUME ["/var/lib/consumer", "/tmp"]
USER 10001:10001
EXPOSE 9108
# The supervisor (`python -m consumer run`, PID 1 or under an init) forwards SIGTERM to the KCL
# daemon, which ends every shard processor after its batch and checkpoints; the ECS stop timeout
# and compose's stop_grace_period give it the time to do so.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('METRICS_PORT', '9108'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
# env_from_files.py turns NAME_FILE secrets (compose) into NAME (the MLflow credentials), then
# execs the package: the same process, so signals still reach it.
ENTRYPOINT ["python", "/opt/dropout/env_from_files.py", "python", "-m", "consumer"]
CMD ["run"]
