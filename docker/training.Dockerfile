# syntax=docker/dockerfile:1
# Training job image: `python -m training <command>` (train by default). It runs to completion:
# as a one-shot service in docker-compose and as an ECS task started by Step Functions in AWS.
#
#   docker build -f docker/training.Dockerfile -t dropout-training .
#   docker run --rm -e MLFLOW_TRACKING_URI=http://mlflow:5000 dropout-training train --quick

# Base images by digest: Renovate (renovate.json) keeps these ARG defaults current. A build
# against local copies that carry the tag but not this digest (a mirror, stand-in images)
# overrides them, e.g. --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm.
#checkov:skip=CKV_DOCKER_7:The FROM images are ARGs whose defaults are pinned to tag@sha256 digests (tests/deploy checks them); checkov does not resolve ARGs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/training.txt /tmp/requirements.txt
# Then only what runs stays (docker/README.md, "Size"): statsmodels (declared by feature-engine,
# imported by nothing here) and patsy, formulaic, interface-meta and wrapt, which only it needs;
# pip, setuptools and wheel; the packages' test suites, C headers and Cython sources.
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && pip uninstall --yes --quiet statsmodels patsy formulaic interface-meta wrapt \
    && python -m pip uninstall --yes --quiet pip setuptools wheel \
    && find /opt/venv -type d -name tests -prune -exec rm -rf {} + \
    && find /opt/venv -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cpp' \
       -o -name '*.pxd' -o -name '*.pyx' \) -delete

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dropout-training" \
      org.opencontainers.image.description="Student dropout early warning: training job" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    DATA_CACHE_DIR=/var/lib/training/cache \
    REPORTS_DIR=/var/lib/training/reports
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/training \
    && chown app:app /var/lib/training
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY common/ ./common/
COPY training/ ./training/
COPY docker/env_from_files.py /opt/dropout/
VOLUME ["/var/lib/training", "/tmp"]
USER 10001:10001
# A batch job has no endpoint to probe: its exit code is its health.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
# env_from_files.py turns NAME_FILE secrets (compose) into NAME (the MLflow credentials), then
# execs the package: the same process, so signals still reach it.
ENTRYPOINT ["python", "/opt/dropout/env_from_files.py", "python", "-m", "training"]
CMD ["train"]
