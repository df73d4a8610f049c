"""settings.py: the one reader of settings — precedence, fallbacks, defaults, validation, provider config."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from flowsync_provider import get_provider_info, settings
from flowsync_provider.core.errors import ParamError
from flowsync_provider.klaviyo.errors import KlaviyoConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting leaks in from the machine: every Airflow and runbook name is unset per test."""
    for option in settings.OPTIONS.values():
        monkeypatch.delenv(option.airflow_env, raising=False)
        for env in option.envs:
            monkeypatch.delenv(env, raising=False)
    return monkeypatch


def test_airflow_name_wins_over_runbook_name_which_wins_over_default(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.lookup("klaviyo_enable") == ("false", "default")
    assert settings.klaviyo_enabled() is False
    clean_env.setenv("KLAVIYO_ENABLE", "TRUE")
    assert settings.klaviyo_enabled() is True
    assert settings.lookup("klaviyo_enable") == ("TRUE", "env KLAVIYO_ENABLE")
    clean_env.setenv("AIRFLOW__FLOWSYNC__KLAVIYO_ENABLE", "false")
    assert settings.klaviyo_enabled() is False
    assert settings.lookup("klaviyo_enable")[1] == "[flowsync] klaviyo_enable"


def test_values_are_read_at_call_time_and_blank_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.nightly_schedule() == "0 7 * * *"
    clean_env.setenv("FLOWSYNC_NIGHTLY_SCHEDULE", "  ")
    assert settings.nightly_schedule() == "0 7 * * *"
    clean_env.setenv("FLOWSYNC_NIGHTLY_SCHEDULE", "30 5 * * *")
    assert settings.nightly_schedule() == "30 5 * * *"
    clean_env.setenv("AIRFLOW__FLOWSYNC__NIGHTLY_SCHEDULE", "")
    assert settings.nightly_schedule() == "30 5 * * *"


def test_fallback_chains_keep_the_runbook_order(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.klaviyo_api_key() == (None, "missing")
    clean_env.setenv("KLAVIYO_API_KEY_PRIVATE", "pk_private")
    assert settings.klaviyo_api_key() == ("pk_private", "env KLAVIYO_API_KEY_PRIVATE")
    clean_env.setenv("KLAVIYO_API_KEY", "pk_main")
    assert settings.klaviyo_api_key() == ("pk_main", "env KLAVIYO_API_KEY")
    assert settings.ingest_bucket() is None
    clean_env.setenv("PREAUTH_BUCKET", "pre")
    assert settings.ingest_bucket() == "pre"
    clean_env.setenv("DATA_INGEST_BUCKET", "data")
    assert settings.ingest_bucket() == "data"


def test_home_and_limiter_url(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.delenv("AIRFLOW_HOME", raising=False)
    clean_env.setenv("HOME", str(tmp_path))
    assert settings.flowsync_home() == tmp_path / ".flowsync"
    clean_env.setenv("AIRFLOW_HOME", str(tmp_path / "af"))
    assert settings.flowsync_home() == tmp_path / "af" / "flowsync"
    clean_env.setenv("FLOWSYNC_HOME", str(tmp_path / "fs"))
    assert settings.flowsync_home() == tmp_path / "fs"
    assert settings.limiter_url() == f"sqlite:///{tmp_path / 'fs' / 'limiter.db'}"
    clean_env.setenv("AIRFLOW__FLOWSYNC__LIMITER_URL", "redis://127.0.0.1:6379/3")
    assert settings.limiter_url() == "redis://127.0.0.1:6379/3"


def test_numbers_are_validated_with_one_sentence_naming_the_setting(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.hard_maxima() == {"limitFlows": 500, "limitMessages": 2000, "days": 366, "rowBudget": 1_000_000}
    clean_env.setenv("FLOWSYNC_MAX_DAYS", "400")
    assert settings.hard_max("days") == 400
    clean_env.setenv("FLOWSYNC_MAX_DAYS", "lots")
    with pytest.raises(ParamError, match=r"^FLOWSYNC_MAX_DAYS must be a whole number, got 'lots'\.$"):
        settings.hard_max("days")
    assert settings.klaviyo_limit_global_burst() is None
    clean_env.setenv("KLAVIYO_LIMIT_GLOBAL_BURST", "0")
    with pytest.raises(KlaviyoConfigError, match="KLAVIYO_LIMIT_GLOBAL_BURST must be a positive integer, got 0"):
        settings.klaviyo_limit_global_burst()
    assert settings.pii_retention_hours() == 0.0
    assert settings.audience_lookback_hours() == 24.0
    clean_env.setenv("FLOWSYNC_PII_RETENTION_HOURS", "-1")
    with pytest.raises(ParamError, match="FLOWSYNC_PII_RETENTION_HOURS must be 0 or more hours"):
        settings.pii_retention_hours()
    assert settings.defer_after_seconds() == 120.0
    clean_env.setenv("AIRFLOW__FLOWSYNC__DEFER_AFTER_SECONDS", "5")
    assert settings.defer_after_seconds() == 5.0


def test_small_accessors(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.storage_backend() == "auto"
    clean_env.setenv("FLOWSYNC_STORAGE_BACKEND", " Local ")
    assert settings.storage_backend() == "local"
    assert settings.hash_key() is None
    clean_env.setenv("FLOWSYNC_HASH_KEY", "k")
    assert settings.hash_key() == b"k"
    assert settings.supabase_env_configured() is False
    clean_env.setenv("SUPABASE_SERVICE_ROLE_KEY", "srk")
    assert settings.supabase_env_configured() is True
    assert settings.supabase_url() == (None, "default")
    for accessor in ("klaviyo_api_revision", "shopify_placed_order_metric_id", "staging_bucket",
                     "admin_job_secret", "dashboard_url"):
        assert getattr(settings, accessor)() is None


def test_provider_info_declares_every_option_with_an_accessor() -> None:
    section = get_provider_info()["config"]["flowsync"]
    assert set(section["options"]) == set(settings.OPTIONS) == set(settings.ACCESSORS)
    for name, entry in section["options"].items():
        option = settings.OPTIONS[name]
        assert callable(getattr(settings, settings.ACCESSORS[name]))
        assert set(entry) >= {"description", "version_added", "type", "example", "default"}
        assert entry["default"] is None  # applied in settings.lookup, after the runbook names
        assert all(env in entry["description"] for env in option.envs)
        assert entry.get("sensitive", False) is option.sensitive
    sensitive = {n for n, o in settings.OPTIONS.items() if o.sensitive}
    assert sensitive == {"klaviyo_api_key", "supabase_service_role_key", "admin_job_secret", "hash_key"}


def test_secrets_stay_out_of_option_reprs(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLOWSYNC_HASH_KEY", "s3cr3t-hash")
    clean_env.setenv("ADMIN_JOB_SECRET", "s3cr3t-admin")
    text = repr(settings.OPTIONS) + repr(settings.provider_config())
    assert "s3cr3t" not in text


# ---------------------------------------------------------------- only settings.py reads the environment

PACKAGE = Path(settings.__file__).parent
ROOT = PACKAGE.parents[1]
# Every module of the package is scanned: no exceptions.
REWRITE_IN_PROGRESS: tuple[str, ...] = ()
ALLOWED_LINES: dict[str, str] = {}


def env_reads(source: str) -> list[int]:
    """Line numbers of ``os.environ`` / ``os.getenv`` / ``os.putenv`` and ``from os import environ|getenv``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "environb") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(a.name in ("environ", "getenv", "environb", "*") for a in node.names):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_sees_each_form_of_env_read() -> None:
    source = "import os\nfrom os import environ\nos.environ.get('A')\nos.getenv('B')\nx = os.environ['C']\n"
    assert env_reads(source) == [2, 3, 4, 5]


def test_no_module_but_settings_reads_the_environment() -> None:
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "dags").glob("*.py"))
    assert len(files) > 40
    offenders = []
    for path in files:
        rel = path.relative_to(PACKAGE).as_posix() if PACKAGE in path.parents else path.relative_to(ROOT).as_posix()
        if rel == "settings.py" or rel.startswith(REWRITE_IN_PROGRESS):
            continue
        text = path.read_text()
        lines = text.splitlines()
        for lineno in env_reads(text):
            if ALLOWED_LINES.get(rel, "\0") in lines[lineno - 1]:
                continue
            offenders.append(f"{rel}:{lineno}: {lines[lineno - 1].strip()}")
    assert offenders == [], "read settings through flowsync_provider.settings:\n" + "\n".join(offenders)


# ---------------------------------------------------------------- docs/configuration.md is the reference


def test_every_option_has_a_row_in_docs_configuration() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| `")}
    for name, option in settings.OPTIONS.items():
        row = rows.get(f"`{name}`")
        assert row is not None, f"docs/configuration.md has no row for [flowsync] {name}"
        assert f"`{option.airflow_env}`" in row
        assert all(f"`{env}`" in row for env in option.envs), (name, option.envs)
        assert (f"`{option.default}`" if option.default is not None else "—") in row.split("|")[4], name
        assert f"`{settings.ACCESSORS[name]}(" in row, name


def test_airflow_cfg_values_count_inside_airflow(clean_env: pytest.MonkeyPatch) -> None:
    """In an Airflow process the [flowsync] section is read with conf (airflow.cfg too), before the runbook name."""
    from airflow.configuration import conf

    clean_env.setenv("FLOWSYNC_STORAGE_BACKEND", "supabase")
    conf.set("flowsync", "storage_backend", "local")
    try:
        assert settings.lookup("storage_backend") == ("local", "[flowsync] storage_backend")
    finally:
        conf.remove_option("flowsync", "storage_backend")
    assert settings.storage_backend() == "supabase"


def test_the_client_side_never_imports_airflow_for_a_setting() -> None:
    """Outside Airflow processes the env form is read directly: the client and bench stay Airflow-free."""
    code = (
        "import os, sys\n"
        "os.environ['AIRFLOW__FLOWSYNC__KLAVIYO_LIMIT_GLOBAL_BURST'] = '3'\n"
        "os.environ['KLAVIYO_LIMIT_GLOBAL_BURST'] = '9'\n"
        "from flowsync_provider.klaviyo import KlaviyoClient\n"
        "client = KlaviyoClient('pk_test', limiter_url='memory://')\n"
        "print(client.global_burst, any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["3", "False"]
