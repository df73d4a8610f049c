#!/usr/bin/env bash
# One-shot setup run by the `airflow-init` compose service before any other Airflow service starts.
#
# Adapted from the inline init command of Airflow's official docker-compose.yaml. It runs as root
# (user "0:0") so it can create and chown the shared folders; every Airflow call goes through the
# image's /entrypoint, which waits for the database and, because the service sets
# _AIRFLOW_DB_MIGRATE and _AIRFLOW_WWW_USER_CREATE, migrates the metadata DB and creates the admin user
# on the first call only (the later calls blank those variables so the work is not repeated).
#
# Steps: resource warnings -> folders + ownership -> migrate + admin user -> shared airflow.cfg
# (generated once into ./config, it carries the fernet key, api secret_key and jwt_secret that every
# container must share) -> pools from pools.json -> print the pools.
set -euo pipefail

AIRFLOW_UID="${AIRFLOW_UID:-50000}"
ENTRYPOINT="${AIRFLOW_ENTRYPOINT:-/entrypoint}"
POOLS_FILE=/opt/airflow/pools.json  # docker-compose.yaml mounts ./pools.json here
FLOWSYNC_HOME="${FLOWSYNC_HOME:-/opt/airflow/flowsync}"

warn() { printf '\033[1;33mWARNING: %s\033[0m\n' "$*" >&2; }

check_resources() {
    # Warnings only: the stack runs (slowly) on less; these are the official compose's thresholds.
    local one_meg=1048576 mem_mb cpus disk_kb
    mem_mb=$(($(getconf _PHYS_PAGES) * $(getconf PAGE_SIZE) / one_meg))
    cpus=$(grep -cE 'cpu[0-9]+' /proc/stat || true)
    disk_kb=$(df / | tail -1 | awk '{print $4}')
    if ((mem_mb < 4000)); then warn "at least 4 GB of memory is recommended for Docker (have ${mem_mb} MB)"; fi
    if ((cpus < 2)); then warn "at least 2 CPUs are recommended for Docker (have ${cpus})"; fi
    if ((disk_kb < one_meg * 10)); then warn "at least 10 GB of free disk is recommended for Docker"; fi
}

prepare_folders() {
    if [[ "${AIRFLOW_UID}" == "50000" ]]; then
        warn "AIRFLOW_UID is the image default (50000); on Linux set AIRFLOW_UID=\$(id -u) in .env so files you mount stay yours"
    fi
    mkdir -p /opt/airflow/{logs,dags,plugins,config} "${FLOWSYNC_HOME}"
    # Group 0 + group-writable, as the image expects; a failure (e.g. a read-only or foreign mount)
    # must not stop the migration, so it only warns.
    chown -R "${AIRFLOW_UID}:0" /opt/airflow/{logs,dags,plugins,config} "${FLOWSYNC_HOME}" \
        || warn "could not chown the mounted folders; check their permissions on the host"
    chmod -R g+rwX /opt/airflow/logs "${FLOWSYNC_HOME}" || warn "could not make logs/flowsync group-writable"
}

airflow_cmd() {
    # After the first call the DB is migrated and the user exists: do not redo either.
    _AIRFLOW_DB_MIGRATE='' _AIRFLOW_WWW_USER_CREATE='' "${ENTRYPOINT}" airflow "$@"
}

main() {
    check_resources
    prepare_folders

    echo "Airflow version (first entrypoint call: waits for the DB, migrates, creates the admin user):"
    "${ENTRYPOINT}" airflow version

    echo "Writing the shared airflow.cfg if missing (holds the secrets all containers must share)"
    airflow_cmd config list >/dev/null
    chown "${AIRFLOW_UID}:0" /opt/airflow/config/airflow.cfg || warn "could not chown config/airflow.cfg"

    if [[ ! -r "${POOLS_FILE}" ]]; then
        echo "ERROR: pools file ${POOLS_FILE} is missing; it is mounted from ./pools.json" >&2
        exit 1
    fi
    echo "Importing pools from ${POOLS_FILE}"
    airflow_cmd pools import "${POOLS_FILE}"
    airflow_cmd pools list
}

main "$@"
