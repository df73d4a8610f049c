"""flowsync: an Apache Airflow provider that syncs Klaviyo email analytics to CSV and Supabase."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from flowsync_provider.settings import provider_config  # no Airflow import: names and defaults only

    return {
        "package-name": "airflow-provider-flowsync",
        "name": "flowsync",
        "description": "Klaviyo flows, campaigns and subscribers to CSV, Supabase Storage and snapshots.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "flowsync_provider.hooks.klaviyo.KlaviyoHook",
                "connection-type": "klaviyo",
                "hook-name": "Klaviyo",
                # literal copies of hooks.klaviyo.UI_FIELD_BEHAVIOUR / CONN_FIELDS (no Airflow import here)
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "Private API key", "host": "Base URL"},
                    "placeholders": {"host": "https://a.klaviyo.com",
                                     "extra": '{"revision": "2026-07-15", "timeout": 30}'},
                },
                "conn-fields": {
                    "revision": {"label": "API revision",
                                 "schema": {"type": ["string", "null"], "default": "2026-07-15"}},
                    "timeout": {"label": "Timeout (seconds)", "schema": {"type": ["number", "null"], "default": 30}},
                    "account_key": {"label": "Limiter account key", "schema": {"type": ["string", "null"]}},
                    "time_scale": {"label": "Time scale", "schema": {"type": ["number", "null"], "default": 1}},
                },
            },
            {
                "hook-class-name": "flowsync_provider.hooks.supabase.SupabaseHook",
                "connection-type": "supabase",
                "hook-name": "Supabase",
            },
        ],
        "hooks": [
            {"integration-name": "Klaviyo", "python-modules": ["flowsync_provider.hooks.klaviyo"]},
            {"integration-name": "Supabase", "python-modules": ["flowsync_provider.hooks.supabase"]},
            {"integration-name": "flowsync dashboard", "python-modules": ["flowsync_provider.hooks.dashboard"]},
        ],
        "operators": [
            {
                "integration-name": "Klaviyo",
                "python-modules": [
                    "flowsync_provider.operators.plan",
                    "flowsync_provider.operators.flows",
                    "flowsync_provider.operators.campaigns",
                    "flowsync_provider.operators.audience",
                    "flowsync_provider.operators.snapshot_runs",
                ],
            },
            {
                "integration-name": "Supabase",
                "python-modules": ["flowsync_provider.operators.upload", "flowsync_provider.operators.live"],
            },
            {"integration-name": "flowsync dashboard", "python-modules": ["flowsync_provider.operators.snapshot"]},
        ],
        "triggers": [
            {"integration-name": "Klaviyo", "python-modules": ["flowsync_provider.triggers.ratelimit"]},
            {"integration-name": "flowsync dashboard", "python-modules": ["flowsync_provider.triggers.snapshot"]},
        ],
        "config": provider_config(),
        "notifications": ["flowsync_provider.notifications.FlowsyncFailureNotifier"],
        "integrations": [
            {"integration-name": "Klaviyo", "external-doc-url": "https://developers.klaviyo.com/en/reference/api_overview"},
            {"integration-name": "Supabase", "external-doc-url": "https://supabase.com/docs/guides/storage"},
            # no public site yet: the dashboard seam is documented in the repository (path from its root)
            {"integration-name": "flowsync dashboard",
             "external-doc-url": "docs/INTERFACES.md#storage-hooks-snapshots-see-module-docstrings"},
        ],
    }
