"""Airflow: the nightly `swr-etl run`, then `swr-etl check`, as two BashOperator tasks.

Copy this file into the DAGs folder of a deployment whose workers have `swr-etl` installed. The SWR
settings come from an Airflow connection `swr_api` (host: the endpoint, login: the project id, password:
the token) and reach the commands as the environment variables `swr-etl` reads; anything else (`SWR_ETL_*`,
`AWS_*`) can be set on the workers or added to `SWR_ENV`.

What Airflow does with each exit status (docs/operations.md, "Orchestrators"):
- `run`: 0 success; 1 failure (API, network, storage: the next attempt fetches only what is missing), retried
  twice; 2 a configuration error, which fails again on each retry before any request; 130 stopped by the
  task's timeout, with every file whole.
- `check`: 0 success; 1 alerts (one line each in the task log, and the JSON on stdout) or an unreadable
  warehouse: the task fails, which is what notifies; it is not retried. It runs after `run` whatever `run`
  did, since a run that failed leaves the lake to go stale, which is one of the alerts.

`tests/test_orchestrators.py` loads this file with stand-ins for Airflow's classes and runs both commands,
in order, against the sandbox API.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

DATA_DIR = "/srv/swr-lake"
SWR_ENV = {
    "SWR_ENDPOINT": "{{ conn.swr_api.host }}",
    "SWR_PROJECT_ID": "{{ conn.swr_api.login }}",
    "SWR_AUTH_TOKEN": "{{ conn.swr_api.password }}",
}

with DAG(
    dag_id="swr_replication",
    schedule="15 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two runs on one data directory never overlap anyway: the second would exit 1
    tags=["swr-etl"],
) as dag:
    run = BashOperator(
        task_id="swr_etl_run",
        bash_command=f"swr-etl --log-format json run --data-dir {DATA_DIR}",
        env=SWR_ENV,
        append_env=True,  # PATH, and the workers' own SWR_ETL_* and AWS_* variables
        retries=2,
        retry_delay=timedelta(minutes=10),
        execution_timeout=timedelta(hours=3),
    )
    check = BashOperator(
        task_id="swr_etl_check",
        bash_command=f"swr-etl --log-format json check --format json --data-dir {DATA_DIR}",
        retries=0,
        trigger_rule="all_done",
        execution_timeout=timedelta(minutes=10),
    )
    run >> check
