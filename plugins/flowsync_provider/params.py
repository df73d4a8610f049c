"""Airflow Params (JSON schema) mirroring the runbook's request body; shared by the sync DAGs.

The schema refuses bad types at trigger time; cross-field rules live in ``core.params``.
"""

from __future__ import annotations

from airflow.sdk import Param

from flowsync_provider.core.params import SECRET_KEYS
from flowsync_provider.core.plan import NIGHTLY_ONE_CALL_MAX_LOOKBACK, SERIES_MAX_DAYS
from flowsync_provider.core.windows import TIMEFRAME_KEYS

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
SECRETS_SECTION = "Secrets: never here"


def secret_params() -> dict[str, Param]:
    """Every known secret name as a null-only param: Airflow refuses a trigger carrying one before storing the run.

    Included in every DAG's params. The run's conf is stored in the metadata DB and shown in the UI, so the
    schema is the only check that runs before the value is written (UI, CLI, REST and ``dags test``).
    """
    return {
        name: Param(None, type="null", section=SECRETS_SECTION,
                    description="Never pass secrets here: a run's conf is stored and shown in the UI, so a "
                                "value is refused. Leave it empty; keys live in the Airflow connections "
                                "(klaviyo_default, supabase_default, flowsync_dashboard) or the workers' "
                                "environment.")
        for name in SECRET_KEYS
    }


def escape_formulas_param() -> Param:
    """Opt-in CSV formula escaping (OWASP CSV Injection); off by default: the processor wants exact bytes."""
    return Param(False, type="boolean",
                 description="Prefix ' to text cells (names, tags, emails) starting with = + - @ TAB or CR, "
                             "so a spreadsheet shows them instead of running them. Numeric columns are never "
                             "changed. Off by default: files stay byte-faithful for the snapshot processor.")


def _optional_date(description: str) -> Param:
    return Param(None, type=["null", "string"], pattern=DATE_PATTERN, description=description)


def window_params(days_default: int = 7) -> dict[str, Param]:
    return {
        "days": Param(days_default, type="integer", minimum=1,
                      description="The N complete days ending yesterday in the account timezone."),
        "start": _optional_date("First day (YYYY-MM-DD, account timezone, inclusive). Wins over days."),
        "end": _optional_date("Last day (YYYY-MM-DD, account timezone, inclusive). Default: yesterday."),
        "timeframeKey": Param(None, type=["null", "string"], enum=[None, *sorted(TIMEFRAME_KEYS)],
                              description="Klaviyo timeframe key, turned into dates locally. Wins over days."),
    }


def common_params() -> dict[str, Param]:
    return {
        "mode": Param("dry-run", type="string", enum=["dry-run", "live"],
                      description="dry-run writes local files only; live uploads to storage."),
        "format": Param("json", type="string", enum=["json", "csv"], description="Local output format."),
        **window_params(),
        "conversionMetricId": Param(None, type=["null", "string"],
                                    description="Placed Order metric id override."),
        "rowBudget": Param(50_000, type="integer", minimum=1, description="Fail fast above this many rows."),
        "debug": Param(False, type="boolean"),
        "accountId": Param(None, type=["null", "string"], description="Dashboard account id (object paths)."),
        "uploadId": Param(None, type=["null", "string"], description="Object folder; derived when empty."),
        "allowEmpty": Param(False, type="boolean", description="Allow uploading an empty/all-zero file."),
        "escapeFormulas": escape_formulas_param(),
        **secret_params(),
    }


def flow_params() -> dict[str, Param]:
    return {
        **common_params(),
        "limitFlows": Param(25, type="integer", minimum=1, description="Cap on flows (runbook: ≤ 50)."),
        "limitMessages": Param(50, type="integer", minimum=1, description="Cap on messages (runbook: ≤ 100)."),
        "enrichMessageNames": Param(True, type="boolean", description="Map message ids to names/channels."),
        "aggregation": Param("per-day", type="string", enum=["per-day", "range", "auto"],
                             description="per-day rows, one range total (dry-run only), or auto."),
        "reportStrategy": Param("series", type="string", enum=["series", "values-per-day"],
                                description="series: one call per ≤60 days; values-per-day: the runbook's "
                                            "one flow-values call per day (for comparison)."),
        "includeDrafts": Param(False, type="boolean", description="Include draft flows as zero rows."),
    }


def campaign_params() -> dict[str, Param]:
    """Campaign sync: the common params with a 30-day default window (campaigns are sparse)."""
    params = common_params()
    params.update(window_params(days_default=30))
    return params


INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"


def audience_params() -> dict[str, Param]:
    """Audience sync: no window; export mode and the PII controls (see docs for the column meanings)."""
    common = common_params()
    return {
        "mode": common["mode"],
        "format": Param("csv", type="string", enum=["json", "csv"],
                        description="Local output format (csv streams; json writes one array)."),
        "audienceMode": Param("full", type="string", enum=["full", "incremental"],
                              description="full: every profile; incremental: profiles updated after "
                                          "updatedSince (default: 24 h before the run)."),
        "updatedSince": Param(None, type=["null", "string"], pattern=INSTANT_PATTERN,
                              description="Incremental only: ISO-8601 instant with offset, e.g. "
                                          "2025-09-01T00:00:00+00:00."),
        "hashEmails": Param(False, type="boolean",
                            description="Replace emails by HMAC-SHA256 (key FLOWSYNC_HASH_KEY; plain SHA-256 "
                                        "without a key, which is dictionary-reversible)."),
        "dropNames": Param(False, type="boolean", description="Leave First Name / Last Name empty."),
        "rowBudget": Param(250_000, type="integer", minimum=1,
                           description="Fail before writing the file above this many profiles."),
        "debug": common["debug"],
        "accountId": common["accountId"],
        "uploadId": common["uploadId"],
        "allowEmpty": common["allowEmpty"],
        "escapeFormulas": common["escapeFormulas"],
        **secret_params(),
    }


def _snapshot_common() -> dict[str, Param]:
    return {
        "allowEmpty": Param(False, type="boolean",
                            description="Upload even when a file is empty/all zero where data was expected."),
        "audienceMode": Param("full", type="string", enum=["full", "incremental"],
                              description="subscribers.csv: full export (default) or only changed profiles "
                                          "(for processors that merge)."),
        "hashEmails": Param(False, type="boolean"),
        "dropNames": Param(False, type="boolean"),
        "waitForProcessing": Param(False, type="boolean",
                                   description="Defer until the dashboard marks the snapshot processed."),
        "conversionMetricId": Param(None, type=["null", "string"]),
        "limitFlows": Param(500, type="integer", minimum=1),
        "limitMessages": Param(2000, type="integer", minimum=1),
        "rowBudget": Param(1_000_000, type="integer", minimum=1),
        "uploadId": Param(None, type=["null", "string"],
                          description="Object folder; default derived from account + run (stable on retries). "
                                      "With several accounts each uploads to <uploadId>-<account>."),
        "escapeFormulas": escape_formulas_param(),
        **secret_params(),
    }


def nightly_params() -> dict[str, Param]:
    return {
        "extraLookbackDays": Param(
            0, type="integer", minimum=0, maximum=NIGHTLY_ONE_CALL_MAX_LOOKBACK,
            description="Widen the ±1 day window [T-1-extra, T+1] backwards (conversions keep changing for days "
                        f"after a send). Up to {NIGHTLY_ONE_CALL_MAX_LOOKBACK} the window stays within one "
                        f"{SERIES_MAX_DAYS}-day flow series call, so widening costs no extra reporting call; "
                        "longer ranges belong to the history DAG."),
        **_snapshot_common(),
    }


def history_params() -> dict[str, Param]:
    return {
        "start": Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                       description="First day to rebuild (YYYY-MM-DD, account timezone)."),
        "end": Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                     description="Last day (default yesterday)."),
        "maxShare": Param(0.5, type="number", exclusiveMinimum=0,
                          description="Refuse plans that need more than this share of the 225/day reporting quota."),
        "force": Param(False, type="boolean", description="Run a plan above maxShare anyway."),
        **_snapshot_common(),
    }
