"""The lake's tables, declared once: the transform casts to these, the writer writes them, the warehouse
views select their columns, and the tests compare against them.

Every child row keeps the keys of its parent (``instance_id``, ``execution_id``, ``task_id``, ``side``) and
its position in its list (``artifact_idx``, ``tag_idx``), so a join or a count can always be checked.
Times are UTC (``timestamp[us, tz=UTC]``, DuckDB ``TIMESTAMP WITH TIME ZONE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
COMPRESSION = "zstd"

# Every table is partitioned by instance: one run (one job) owns an instance's partitions, so runs for
# different instances write one lake at once. The tables of tasks are partitioned by the month the execution
# was created, too (``YYYY-MM``, or ``unknown``): an execution's rows all live in one partition, so replacing
# an execution rewrites one partition, and a query over recent months reads recent files only.
PARTITION_COLUMNS = ("instance_id", "execution_month")


@dataclass(frozen=True)
class Table:
    name: str
    schema: pa.Schema
    partitioned: bool  # by instance and execution month (the tables of tasks); else by instance only
    sort_by: tuple[str, ...]
    doc: str
    # Columns with min/max statistics in the files (None: all). The large child tables keep them for their
    # keys only: their other columns are not in key order, so a row group's range would skip nothing, and
    # writing them took a fifth of the write time.
    statistics: tuple[str, ...] | None = None

    @property
    def partition_by(self) -> tuple[str, ...]:
        """The hive partition columns, in folder order: in the path, not in the files."""
        return PARTITION_COLUMNS if self.partitioned else PARTITION_COLUMNS[:1]

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def file_schema(self) -> pa.Schema:
        """What a Parquet file of the table holds: its columns less the partition keys (those are in the path)."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_by])

    @property
    def parquet_options(self) -> dict[str, Any]:
        """How its files are written (``pyarrow.parquet`` options): zstd, every column in a dictionary (the
        encodings every Parquet reader knows, Spark before 3.3 included: docs/decisions/0002), statistics as
        :attr:`statistics` says."""
        return {
            "compression": COMPRESSION,
            "write_statistics": list(self.statistics) if self.statistics is not None else True,
        }


def documented_schema(*fields: tuple[str, pa.DataType, str]) -> pa.Schema:
    """A schema whose fields carry their meaning (``doc`` metadata), for the data dictionary."""
    return pa.schema([pa.field(name, kind, metadata={"doc": doc}) for name, kind, doc in fields])


EXECUTIONS = Table(
    "executions",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance (UUID)"),
        ("execution_id", pa.int64(), "execution id, unique within the instance"),
        ("policy_id", pa.int64(), "replication policy that ran"),
        ("status", pa.string(), "InProgress, Succeed, Failed, Stopped (stored as sent)"),
        ("status_text", pa.string(), "the service's explanation of the status"),
        ("trigger", pa.string(), "manual, scheduled or event_based"),
        ("total", pa.int64(), "the API's own task counter"),
        ("succeed", pa.int64(), "the API's own counter of succeeded tasks"),
        ("failed", pa.int64(), "the API's own counter of failed tasks"),
        ("in_progress", pa.int64(), "the API's own counter of running tasks"),
        ("stopped", pa.int64(), "the API's own counter of stopped tasks"),
        ("created_at", TS, "when the execution started"),
        ("updated_at", TS, "last change of the execution"),
        ("execution_month", pa.string(), "YYYY-MM of created_at (the partition of its tasks)"),
        ("first_seen_run", pa.string(), "run id of the first listing that showed this execution"),
        (
            "last_seen_run",
            pa.string(),
            "run id of the newest listing that showed it (history stays after the API forgets)",
        ),
        ("tasks_run", pa.string(), "run id of the task fetch loaded for it (null: tasks never fetched)"),
        (
            "tasks_status",
            pa.string(),
            "the execution's status when those tasks were fetched (null: the fetch missed tasks)",
        ),
    ),
    partitioned=False,
    sort_by=("instance_id", "execution_id"),
    doc="one row per execution ever listed, newest record wins",
)

TASKS = Table(
    "tasks",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance (UUID)"),
        ("execution_id", pa.int64(), "execution the task belongs to"),
        ("task_id", pa.int64(), "task id; (instance_id, execution_id, task_id) is unique"),
        ("policy_id", pa.int64(), "replication policy of the execution"),
        ("resource_type", pa.string(), "artifact, image or chart (stored as sent)"),
        ("operation", pa.string(), "copy, deletion or tag deletion (null when the API sent none)"),
        ("job_id", pa.string(), "Harbor job id"),
        ("status", pa.string(), "Initialized, Pending, InProgress, Succeed, Failed, Stopped (stored as sent)"),
        ("status_revision", pa.int64(), "Harbor's StatusRevision (a Unix timestamp)"),
        ("start_time", TS, "task start (UTC)"),
        ("end_time", TS, "task end (UTC); null while running"),
        ("duration_s", pa.float64(), "end_time - start_time in seconds"),
        ("src_repository", pa.string(), "source repository (null when the source resource was rejected)"),
        ("dst_repository", pa.string(), "destination repository (null when rejected)"),
        ("src_artifacts", pa.int32(), "artifacts listed on the source side (null when rejected)"),
        ("dst_artifacts", pa.int32(), "artifacts listed on the destination side (null when rejected)"),
        ("src_tags", pa.int32(), "tags listed on the source side (null when rejected)"),
        ("dst_tags", pa.int32(), "tags listed on the destination side (null when rejected)"),
        ("src_public", pa.bool_(), "the source repository's public flag"),
        ("dst_public", pa.bool_(), "the destination repository's public flag"),
        ("src_deleted", pa.bool_(), "resource marked deleted on the source side"),
        ("dst_deleted", pa.bool_(), "resource marked deleted on the destination side"),
        ("dst_override", pa.bool_(), "destination resource overrides existing artifacts"),
        ("src_rejected", pa.bool_(), "the source resource could not be read (see rejects)"),
        ("dst_rejected", pa.bool_(), "the destination resource could not be read (see rejects)"),
        ("run_id", pa.string(), "the fetch (run) this row was loaded from"),
        ("execution_month", pa.string(), "partition: YYYY-MM of the execution's created_at"),
    ),
    partitioned=True,
    sort_by=("execution_id", "task_id"),
    doc="one row per task the API listed, even when its resources are bad",
)

ARTIFACTS = Table(
    "artifacts",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance"),
        ("execution_id", pa.int64(), "parent execution"),
        ("task_id", pa.int64(), "parent task"),
        ("side", pa.string(), "src or dst"),
        ("artifact_idx", pa.int32(), "position in the resource's artifact list"),
        ("repository", pa.string(), "repository of that side"),
        ("artifact_type", pa.string(), "IMAGE, CHART, ... (stored as sent)"),
        ("digest", pa.string(), "sha256:... content digest"),
        ("tag_count", pa.int32(), "tags listed for the artifact (0 for null)"),
        ("execution_month", pa.string(), "partition"),
    ),
    partitioned=True,
    sort_by=("execution_id", "task_id", "side", "artifact_idx"),
    statistics=("execution_id", "task_id"),
    doc="one row per artifact per side of a readable resource",
)

TAGS = Table(
    "tags",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance"),
        ("execution_id", pa.int64(), "parent execution"),
        ("task_id", pa.int64(), "parent task"),
        ("side", pa.string(), "src or dst"),
        ("artifact_idx", pa.int32(), "position of the artifact in its list"),
        ("tag_idx", pa.int32(), "position of the tag in the artifact's tag list"),
        ("repository", pa.string(), "repository of that side"),
        ("digest", pa.string(), "digest of the tagged artifact"),
        ("tag", pa.string(), "the tag"),
        ("execution_month", pa.string(), "partition"),
    ),
    partitioned=True,
    sort_by=("execution_id", "task_id", "side", "artifact_idx", "tag_idx"),
    statistics=("execution_id", "task_id"),
    doc="one row per tag per artifact per side of a readable resource",
)

SUBTASKS = Table(
    "subtasks",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance"),
        ("execution_id", pa.int64(), "parent execution"),
        ("task_id", pa.int64(), "parent task"),
        ("subtask_id", pa.int64(), "subtask id; (instance_id, execution_id, task_id, subtask_id) is unique"),
        ("job_id", pa.string(), "Harbor job id of the subtask"),
        ("namespace", pa.string(), "namespace of the source repository"),
        ("repository", pa.string(), "source repository, without its namespace"),
        ("tag", pa.string(), "the tag this subtask replicated"),
        ("digest", pa.string(), "digest of the tagged artifact"),
        ("status", pa.string(), "Succeed, Failed, Stopped, InProgress, ... (stored as sent)"),
        ("status_text", pa.string(), "why: the failure text of a failed tag (empty when none)"),
        ("start_time", TS, "subtask start (UTC)"),
        ("end_time", TS, "subtask end (UTC); null while running"),
        ("run_id", pa.string(), "the fetch (run) this row was loaded from, the same as its task's"),
        ("execution_month", pa.string(), "partition: YYYY-MM of the execution's created_at"),
    ),
    partitioned=True,
    sort_by=("execution_id", "task_id", "subtask_id"),
    doc="one row per tag of a task whose subtasks were fetched (--subtasks: by default tasks not Succeed)",
)

REJECTS = Table(
    "rejects",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance"),
        ("execution_id", pa.int64(), "execution of the task"),
        ("task_id", pa.int64(), "task (null when the task itself had no usable id)"),
        (
            "field",
            pa.string(),
            "what was wrong: src_resource, dst_resource, operation, id, start_time, task, ...; in a subtask: "
            "subtask, subtask.id, subtask.start_time, subtask_page, ...; in a listing's "
            "record: execution.id, execution.total, policy.src_registry.id, registry.url, ...",
        ),
        ("error", pa.string(), "why, in words"),
        ("raw", pa.string(), "the raw text as received (null when the field was missing)"),
        ("run_id", pa.string(), "fetch the record came from"),
        ("page_offset", pa.int64(), "offset of its page in that fetch (raw/tasks/.../page-<offset>.json.zst)"),
        ("position", pa.int32(), "position of the task in that page"),
        (
            "execution_month",
            pa.string(),
            "partition: the execution's YYYY-MM; 'listings' for records of the instances, policies, "
            "registries and executions listings",
        ),
    ),
    partitioned=True,
    sort_by=("execution_id", "page_offset", "position", "field"),
    doc="every record or field that could not be read: kept whole, with the reason",
)

INSTANCES = Table(
    "instances",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance (UUID)"),
        ("name", pa.string(), "instance name"),
        ("status", pa.string(), "Initial, Creating, Running, Unavailable (stored as sent)"),
        ("spec", pa.string(), "instance specification"),
        ("version", pa.string(), "instance version"),
        ("created_at", TS, "when the instance was created"),
        ("description", pa.string(), "instance description"),
        ("charge_mode", pa.string(), "billing mode: postPaid (pay per use) or prePaid (yearly/monthly)"),
        ("access_address", pa.string(), "the instance's registry address (https://...)"),
        ("enterprise_project_id", pa.string(), "enterprise project the instance belongs to ('0': the default)"),
        ("vpc_id", pa.string(), "VPC of the instance"),
        ("vpc_name", pa.string(), "name of that VPC"),
        ("vpc_cidr", pa.string(), "CIDR block of that VPC"),
        ("subnet_id", pa.string(), "subnet of the instance"),
        ("subnet_name", pa.string(), "name of that subnet"),
        ("subnet_cidr", pa.string(), "CIDR block of that subnet"),
        ("obs_bucket_name", pa.string(), "OBS bucket holding the instance's artifacts"),
        ("user_def_obs", pa.bool_(), "that bucket is the user's own, not one the service made"),
        ("updated_at", TS, "last change of the instance"),
        ("expires_at", TS, "when a prePaid instance expires (null: pay per use)"),
        ("first_seen_run", pa.string(), "run id of the first listing that showed this instance"),
        ("last_seen_run", pa.string(), "run id of the newest listing that showed it"),
    ),
    partitioned=False,
    sort_by=("instance_id",),
    doc="one row per instance ever listed, newest record wins",
)

POLICIES = Table(
    "policies",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance"),
        ("policy_id", pa.int64(), "replication policy id, unique within the instance"),
        ("name", pa.string(), "policy name"),
        ("description", pa.string(), "policy description"),
        ("src_registry_id", pa.int64(), "source registry id"),
        ("dest_registry_id", pa.int64(), "destination registry id"),
        ("dest_namespace", pa.string(), "destination namespace"),
        ("trigger_type", pa.string(), "manual, scheduled or event_based"),
        ("trigger_cron", pa.string(), "cron of a scheduled trigger"),
        ("filters", pa.string(), "the policy's filters, as JSON text"),
        ("repo_scope_mode", pa.string(), "repository scope mode"),
        ("override", pa.bool_(), "destination artifacts are overwritten"),
        ("enabled", pa.bool_(), "the policy is enabled"),
        ("created_at", TS, "when the policy was created"),
        ("updated_at", TS, "last change of the policy"),
        ("first_seen_run", pa.string(), "run id of the first listing that showed this policy"),
        ("last_seen_run", pa.string(), "run id of the newest listing that showed it"),
    ),
    partitioned=False,
    sort_by=("instance_id", "policy_id"),
    doc="one row per replication policy ever listed, newest record wins",
)

REGISTRIES = Table(
    "registries",
    documented_schema(
        ("instance_id", pa.string(), "SWR EE instance whose replication target this is"),
        ("registry_id", pa.int64(), "registry id, unique within the instance (0: the instance itself)"),
        ("name", pa.string(), "registry name"),
        ("description", pa.string(), "registry description"),
        ("region_id", pa.string(), "region of the registry"),
        ("type", pa.string(), "swr-pro-internal, swr-pro, huawei-SWR, harbor, docker-hub, ... (stored as sent)"),
        ("url", pa.string(), "the registry's address"),
        ("remote_instance_id", pa.string(), "the SWR EE instance the registry is, when it is one (null or empty)"),
        ("insecure", pa.bool_(), "the registry's certificate is not verified"),
        ("status", pa.string(), "healthy or unhealthy (stored as sent)"),
        ("created_at", TS, "when the registry was added"),
        ("updated_at", TS, "last change of the registry"),
        ("credential_type", pa.string(), "type of the registry's credential (basic, ...); its keys are never stored"),
        ("credential_set", pa.bool_(), "the registry has a credential with a non-empty secret"),
        ("first_seen_run", pa.string(), "run id of the first listing that showed this registry"),
        ("last_seen_run", pa.string(), "run id of the newest listing that showed it"),
    ),
    partitioned=False,
    sort_by=("instance_id", "registry_id"),
    doc="one row per registry (replication target) ever listed, newest record wins",
)

TABLES: dict[str, Table] = {
    t.name: t for t in (INSTANCES, POLICIES, REGISTRIES, EXECUTIONS, TASKS, ARTIFACTS, TAGS, SUBTASKS, REJECTS)
}
LISTED = (INSTANCES, POLICIES, REGISTRIES, EXECUTIONS)  # small tables rebuilt whole from the landed listings
