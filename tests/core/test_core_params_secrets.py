"""Secrets in a run's conf: declared names may arrive as null (the trigger form), anything else is refused.

The refusal names the key and where the secret belongs, never the value.
"""

from __future__ import annotations

import pytest

from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.params import PARAM_NAMES, SECRET_KEYS, is_secret_name, refuse_secrets, validate_request

CANARY = "pk_canary_value_4f1d2c9e"


def ui_conf(sync: str) -> dict:
    """What the trigger form sends: every declared param, the secret names as null."""
    return {**{name: None for name in PARAM_NAMES[sync]}, **{name: None for name in SECRET_KEYS}}


@pytest.mark.parametrize("sync", sorted(PARAM_NAMES))
def test_declared_secret_names_sent_as_null_are_accepted(sync: str) -> None:
    request = validate_request(ui_conf(sync), ui_conf(sync), sync=sync)
    assert request.mode == "dry-run"


def test_runbook_names_and_their_camel_case_forms_are_declared() -> None:
    for name in ("klaviyoApiKey", "apiKey", "KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE", "SUPABASE_SERVICE_ROLE_KEY",
                 "supabaseServiceRoleKey", "serviceRoleKey", "supabaseServiceKey", "ADMIN_JOB_SECRET",
                 "adminJobSecret", "x-admin-job-secret", "FLOWSYNC_HASH_KEY"):
        assert name in SECRET_KEYS
    assert all(is_secret_name(name) for name in SECRET_KEYS)
    # no ordinary param looks like a secret
    assert not [n for names in PARAM_NAMES.values() for n in names if is_secret_name(n)]


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("klaviyoApiKey", "klaviyo_default connection or KLAVIYO_API_KEY"),
        ("KLAVIYO_API_KEY_PRIVATE", "klaviyo_default connection or KLAVIYO_API_KEY"),
        ("SUPABASE_SERVICE_ROLE_KEY", "supabase_default connection or SUPABASE_SERVICE_ROLE_KEY"),
        ("x-admin-job-secret", "flowsync_dashboard connection or ADMIN_JOB_SECRET"),
        ("FLOWSYNC_HASH_KEY", "FLOWSYNC_HASH_KEY"),
        # not declared, but secret-looking: still refused at plan time
        ("stripeApiKey", "KLAVIYO_API_KEY"),
        ("dashboardToken", "Airflow connection"),
        ("db_password", "Airflow connection"),
        ("webhookSecret", "Airflow connection"),
        ("supabase_service_role", "SUPABASE_SERVICE_ROLE_KEY"),
    ],
)
def test_a_secret_value_is_refused_naming_the_key_never_the_value(key: str, fix: str) -> None:
    with pytest.raises(ParamError) as info:
        refuse_secrets({"days": 7, key: CANARY})
    message = str(info.value)
    assert message.startswith(f"{key} must not be passed in the run's conf")
    assert fix in message
    assert CANARY not in message and CANARY not in repr(info.value)


@pytest.mark.parametrize("key", ["dashboardToken", "db_password"])
def test_an_undeclared_secret_looking_key_is_refused_even_when_null(key: str) -> None:
    with pytest.raises(ParamError, match=f"^{key} must not be passed"):
        validate_request({}, {key: None}, sync="flows")


def test_validate_request_refuses_the_secret_before_the_unknown_key_check() -> None:
    with pytest.raises(ParamError) as info:
        validate_request({}, {"klaviyoApiKey": CANARY}, sync="flows")
    assert "klaviyoApiKey must not be passed in the run's conf" in str(info.value)
    assert CANARY not in str(info.value)


def test_unknown_keys_are_still_refused_and_null_secret_names_are_not_reported() -> None:
    with pytest.raises(ParamError) as info:
        validate_request({}, {**ui_conf("audience"), "limitFlows": 3}, sync="audience")
    message = str(info.value)
    assert message.startswith("limitFlows is not a parameter of this sync: use one of ")
    assert not [name for name in SECRET_KEYS if name in message]
