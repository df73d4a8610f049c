"""Run one DAG with dag.test() in a fresh process and print its outcome as JSON (last line).

Each run gets its own interpreter: no supervisor threads or SQLite connections left over from earlier
runs in the pytest process (they can deadlock the in-process execution API), and a hard timeout.
Usage: python dag_runner.py DAG_ID CONF_JSON [LOGICAL_DATE_ISO]  (the same logical date re-runs the same run id)
``FLOWSYNC_TEST_RETRY_DELAY_SECONDS`` (test harness only) shortens every task's retry delay, so a test can watch
Airflow's task retries happen inside dag.test() without waiting out the DAG's 30 s / exponential backoff.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def main() -> int:
    from airflow.dag_processing.dagbag import DagBag

    dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
    kwargs = {}
    if len(sys.argv) > 3:
        import pendulum

        kwargs["logical_date"] = pendulum.parse(sys.argv[3])
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)
    retry_delay = os.environ.get("FLOWSYNC_TEST_RETRY_DELAY_SECONDS")
    if retry_delay:
        from datetime import timedelta

        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=float(retry_delay))
            task.retry_exponential_backoff = 0
    try:
        dr = dag.test(run_conf=conf, **kwargs)
    except Exception as exc:  # a trigger refused by the params' schema, etc.
        print("\nFLOWSYNC_DAG_RESULT=" + json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 0
    tasks = {}
    for ti in dr.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[key] = str(ti.state)
    print("\nFLOWSYNC_DAG_RESULT=" + json.dumps({"state": str(dr.state), "run_id": dr.run_id, "tasks": tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
