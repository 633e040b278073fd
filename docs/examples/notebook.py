# ruff: noqa: T201
# %% [markdown]
# # Replication health from a notebook
#
# `pipeline.connect(DATA_DIR)` opens the warehouse read-only; every query's `.df()` is a pandas DataFrame.
# The `# %%` lines are cells for Jupyter (through Jupytext), VS Code or Spyder; as a script it prints each
# answer:
#
#     python docs/examples/notebook.py /srv/swr-lake      # or SWR_ETL_DATA_DIR=/srv/swr-lake python ...
#
# `tests/test_notebook_example.py` runs it on a lake built from the sandbox API.

# %%
import os
import sys
from pathlib import Path

import pandas as pd

import pipeline

DATA_DIR = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SWR_ETL_DATA_DIR", "data"))
db = pipeline.connect(DATA_DIR)  # read-only: nothing here can change the warehouse
pd.set_option("display.width", 120)

# %% [markdown]
# ## How healthy is each policy over its last 30 days of data?

# %%
health = db.sql(
    """
    SELECT instance_id, policy_id, policy_name, day, executions, tasks, finished_tasks, task_success_rate
    FROM policy_health
    WHERE day > (SELECT max(day) FROM policy_health) - INTERVAL 30 DAY
    """
).df()
per_policy = (
    health.assign(succeeded=health["task_success_rate"] * health["finished_tasks"])
    .groupby(["instance_id", "policy_id", "policy_name"], dropna=False)
    .agg(executions=("executions", "sum"), finished=("finished_tasks", "sum"), succeeded=("succeeded", "sum"))
    .assign(success_rate=lambda f: (f["succeeded"] / f["finished"]).round(3))
    .drop(columns="succeeded")
    .sort_values("success_rate")
)
print(per_policy.to_string())

# %% [markdown]
# ## Tasks per day and status (a pivot: one column per status, ready for `.plot()`)

# %%
daily = db.sql("SELECT day, status, sum(tasks)::BIGINT AS tasks FROM daily_throughput GROUP BY ALL").df()
per_day = daily.pivot_table(index="day", columns="status", values="tasks", aggfunc="sum", fill_value=0)
print(per_day.tail(10).to_string())

# %% [markdown]
# ## Which repositories fail most? (at least 5 finished tasks)

# %%
worst = db.sql(
    """
    SELECT src_repository, finished, failed + stopped AS failures, round(failure_rate, 3) AS failure_rate
    FROM repository_failures
    WHERE finished >= 5 AND failed + stopped > 0
    ORDER BY failure_rate DESC, failures DESC, src_repository
    LIMIT 10
    """
).df()
print(worst.to_string(index=False))

# %% [markdown]
# ## Why do tags fail, and what needs attention now?

# %%
reasons = db.sql("SELECT reason, sum(failed_tags)::BIGINT AS failed_tags FROM failure_reasons GROUP BY ALL").df()
print(reasons.sort_values("failed_tags", ascending=False).to_string(index=False))
alerts = db.sql("SELECT kind, policy_name, detail FROM alerts ORDER BY kind, policy_name").df()
print(alerts.to_string(index=False, max_colwidth=70) if len(alerts) else "no alerts")

# %%
db.close()
