"""Dagster: the nightly extract and load of swr-etl as two assets, and `swr-etl check` as an asset check.

    dagster dev -f docs/examples/dagster_defs.py        # with SWR_ETL_DATA_DIR and the SWR_* settings set

Every setting is read from the environment as `swr-etl` reads it (`SWR_ENDPOINT`, `SWR_PROJECT_ID`,
`SWR_AUTH_TOKEN` or `CLOUD_SDK_AK`/`CLOUD_SDK_SK`, `SWR_ETL_*`, the `AWS_*` of an `s3://` lake); the resource
carries only the data directory, the lake and `strict`. `tests/test_orchestrators.py` materializes these assets with
their check against the sandbox API.

- `swr_raw_landing` calls `pipeline.extract`: what changed since the last run, into `DATA_DIR/raw`. An API or
  network failure is retried twice, ten minutes apart (`swr-etl run` exits 1); a configuration error is not
  (exit 2).
- `swr_lake` calls `pipeline.rebuild`: the lake and the warehouse again from the landing, with no API call.
  It reloads the whole landing each time; `pipeline.run` in a single asset loads only what its extract
  fetched.
- `swr_alerts` checks the lake by the thresholds of `swr-etl check` (`SWR_ETL_MAX_FAILURE_RATE`, ...): it fails,
  with one line per alert in its metadata, where `swr-etl check` exits 1.
"""

from __future__ import annotations

import os
from collections import Counter

import dagster as dg

import pipeline
from pipeline.errors import ConfigError
from pipeline.report.check import render_text


class SwrEtl(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where swr-etl keeps its data; everything else comes from the environment."""

    data_dir: str
    lake: str | None = None
    strict: bool = False  # rejected records fail the lake asset (`--strict`)

    def settings(self, *, need_api: bool = True) -> pipeline.Settings:
        try:
            return pipeline.settings(
                environ=os.environ, data_dir=self.data_dir, lake=self.lake, strict=self.strict, need_api=need_api
            )
        except ConfigError as exc:  # the same again on a retry: not retried
            raise dg.Failure(str(exc), allow_retries=False) from exc


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=600), kinds={"python"})
def swr_raw_landing(swr: SwrEtl) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """The raw pages of the SWR replication API (`swr-etl extract`)."""
    try:
        summary = pipeline.extract(swr.settings())
    except ConfigError as exc:  # a folder that is not one, a demo's folder
        raise dg.Failure(str(exc), allow_retries=False) from exc
    return dg.MaterializeResult(
        metadata={
            "status": summary.status,
            "executions_complete": summary.executions_complete,
            "executions_unchanged": summary.executions_unchanged,
            "tasks": summary.tasks,
            "run_id": summary.run_id,
        }
    )


@dg.asset(deps=[swr_raw_landing], kinds={"python", "parquet", "duckdb"})
def swr_lake(swr: SwrEtl) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """The Parquet lake and `warehouse.duckdb` (`swr-etl rebuild`)."""
    settings = swr.settings(need_api=False)
    result = pipeline.rebuild(settings)
    result.raise_for_failure()  # RejectsFound, with strict=True
    assert result.load is not None
    return dg.MaterializeResult(
        metadata={
            "rows": dict(result.load.rows),
            "rejected": result.rejected,
            "warehouse": dg.MetadataValue.path(str(settings.data_dir / "warehouse.duckdb")),
            "run_id": result.run_id,
        }
    )


@dg.asset_check(asset=swr_lake)
def swr_alerts(swr: SwrEtl) -> dg.AssetCheckResult:
    """What `swr-etl check` pages on: the alerts by its thresholds (failing, stale or stuck policies, ...)."""
    settings = swr.settings(need_api=False)
    found = pipeline.check(settings)  # by the command's thresholds, from the environment
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "alerts": len(found),
            "by_kind": dict(Counter(a.kind for a in found)),
            "lines": dg.MetadataValue.text(render_text(found)),
        },
    )


nightly = dg.define_asset_job("swr_nightly", selection=[swr_raw_landing, swr_lake])

defs = dg.Definitions(
    assets=[swr_raw_landing, swr_lake],
    asset_checks=[swr_alerts],
    jobs=[nightly],
    schedules=[dg.ScheduleDefinition(job=nightly, cron_schedule="15 2 * * *", execution_timezone="UTC")],
    resources={"swr": SwrEtl(data_dir=dg.EnvVar("SWR_ETL_DATA_DIR"))},
)
