"""The syncs' steps as plain functions over a KlaviyoClient (no Airflow import).

Operators call these, and so do the benchmark and scripts, so every entry point runs the same code.
"""
