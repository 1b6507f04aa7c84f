# syntax=docker/dockerfile:1
# MLflow tracking server and model registry (mlflow 3.17.2) with its basic-auth app, PostgreSQL
# backend store and an S3 artifact store proxied by the server (clients need no S3 credentials):
# RDS PostgreSQL (IAM authentication) + S3 in AWS, postgres + MinIO in docker-compose.
# The same image runs the users/grants bootstrap:
#   python /opt/dropout/mlflow_auth_bootstrap.py
#
#   docker build -f docker/mlflow.Dockerfile -t dropout-mlflow .

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
COPY docker/mlflow.requirements.txt /tmp/requirements.txt
# Then only what the server runs stays (docker/README.md, "Size"): the `mlflow` package brings
# the client's modelling and plotting libraries (scikit-learn and skops for the sklearn flavor,
# matplotlib for logged figures) and what only they need; the tracking server, its auth app and
# the artifact proxy import none of them. Also pip, setuptools and wheel, the packages' test
# suites, C headers and Cython sources.
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && pip uninstall --yes --quiet scikit-learn joblib threadpoolctl skops prettytable wcwidth \
       matplotlib fonttools kiwisolver contourpy cycler pillow pyparsing \
    && python -m pip uninstall --yes --quiet pip setuptools wheel \
    && find /opt/venv -type d -name tests -prune -exec rm -rf {} + \
    && find /opt/venv -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cpp' \
       -o -name '*.pxd' -o -name '*.pyx' \) -delete

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dropout-mlflow" \
      org.opencontainers.image.description="Student dropout early warning: MLflow tracking server" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000 \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# IAM database authentication (AWS): a .pth line loads the hook into every interpreter of the
# virtualenv, because MLflow opens its database from the server process and from each worker.
COPY docker/dropout_mlflow_db_auth.py docker/dropout_mlflow_db_auth.pth /opt/venv/lib/python3.11/site-packages/
# Entry point (URI, auth config, secrets from files) and the users/grants bootstrap.
COPY docker/mlflow_entrypoint.py docker/mlflow_auth_bootstrap.py docker/env_from_files.py /opt/dropout/
VOLUME ["/tmp"]
USER 10001:10001
EXPOSE 5000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MLFLOW_PORT', '5000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "/opt/dropout/mlflow_entrypoint.py"]
