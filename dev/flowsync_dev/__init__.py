"""flowsync development tools, kept out of the provider wheel (see dev/pyproject.toml).

- ``flowsync_dev.sandbox``: the Klaviyo look-alike server (``flowsync-sandbox``);
- ``flowsync_dev.storage_server`` / ``flowsync_dev.dashboard_server``: Supabase Storage and dashboard
  test servers, on the shared ``flowsync_dev.loopback`` plumbing;
- ``flowsync_dev.airflow_procs``: the process harness of the scale-out tests and scripts.
"""
