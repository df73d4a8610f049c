"""flowsync: an Apache Airflow provider that syncs Klaviyo email analytics to CSV and Supabase."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-flowsync",
        "name": "flowsync",
        "description": "Klaviyo flows, campaigns and subscribers to CSV, Supabase Storage and snapshots.",
        "versions": [__version__],
        "connection-types": [
            {"hook-class-name": "flowsync_provider.hooks.klaviyo.KlaviyoHook", "connection-type": "klaviyo"},
        ],
        "hooks": [
            {"integration-name": "Klaviyo", "python-modules": ["flowsync_provider.hooks.klaviyo"]},
        ],
        "operators": [],
        "triggers": [],
        "integrations": [
            {"integration-name": "Klaviyo", "external-doc-url": "https://developers.klaviyo.com/en/reference/api_overview"},
        ],
    }
