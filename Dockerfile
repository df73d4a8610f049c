# flowsync images: Apache Airflow 3.3.2 (Python 3.11) with this provider and the Celery provider.
# Built by `docker compose build` (see docker-compose.yaml), in two targets:
#   airflow  every Airflow service: the provider only (what the wheel ships); also the default target
#   sandbox  the `sandbox` profile's Klaviyo sandbox (`flowsync-sandbox`): airflow + the dev/ package
FROM apache/airflow:3.3.2-python3.11 AS airflow

# The package is built in place (setuptools writes build/ there), so its folder belongs to `airflow`.
USER root
RUN mkdir -p /opt/flowsync/src && chown airflow:0 /opt/flowsync/src

# The base image installs Python packages as the `airflow` user (PIP_USER=true); never as root.
USER airflow

# Only what the package build needs: the project metadata and the import package.
COPY --chown=airflow:0 pyproject.toml /opt/flowsync/src/pyproject.toml
COPY --chown=airflow:0 plugins/ /opt/flowsync/src/plugins/

# Pinning apache-airflow to the image's version (AIRFLOW_VERSION is set by the base image) keeps pip
# from upgrading or downgrading Airflow while it resolves the provider's dependencies.
WORKDIR /opt/flowsync/src
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        . \
        "apache-airflow-providers-celery>=3.26,<4" \
        "celery[redis]>=5.5,<5.7" \
    && rm -rf build

WORKDIR /opt/airflow

# The sandbox profile: the dev package (Klaviyo sandbox, test servers; never in the airflow target).
FROM airflow AS sandbox
COPY --chown=airflow:0 dev/ /opt/flowsync/src/dev/
WORKDIR /opt/flowsync/src/dev
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" . \
    && rm -rf build
WORKDIR /opt/airflow

# `docker build .` without --target: the production image.
FROM airflow
