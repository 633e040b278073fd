"""The small tables (instances, policies, registries, executions) from the landed listings, and their rejects.

Every object ever listed stays (history outlives the API's memory); the newest listing of each wins. Each
field is read by :mod:`pipeline.transform.values`: a value of the wrong type, or an integer out of range, leaves its
column null and gives a ``rejects`` row (``field`` such as ``execution.total``, the reason, the record's
raw JSON). A record that cannot be keyed (no readable id, or not an object) is rejected whole. Rejects of
the listings live in each instance's ``execution_month=listings`` partition of ``rejects``, rebuilt whole
by every load, as the small tables are. An instance record without a usable id has no partition to go to:
it is logged and left in the raw landing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.landing import Landing
from pipeline.schema import EXECUTIONS, INSTANCES, POLICIES, REGISTRIES, REJECTS, Table
from pipeline.transform.times import execution_month
from pipeline.transform.values import READERS, Read, read_instance_id, read_int

log = logging.getLogger(__name__)

LISTINGS_MONTH = "listings"  # the rejects partition of the listings' records (task rejects use YYYY-MM)

# column -> (path in the record, reader): what each table takes from its listing's records
Fields = dict[str, tuple[tuple[str, ...], str]]
_INSTANCE: Fields = {
    "name": (("name",), "str"),
    "status": (("status",), "str"),
    "spec": (("spec",), "str"),
    "version": (("version",), "str"),
    "created_at": (("created_at",), "time"),
    "description": (("description",), "str"),
    "charge_mode": (("charge_mode",), "str"),
    "access_address": (("access_address",), "str"),
    "enterprise_project_id": (("enterprise_project_id",), "str"),
    "vpc_id": (("vpc_id",), "str"),
    "vpc_name": (("vpc_name",), "str"),
    "vpc_cidr": (("vpc_cidr",), "str"),
    "subnet_id": (("subnet_id",), "str"),
    "subnet_name": (("subnet_name",), "str"),
    "subnet_cidr": (("subnet_cidr",), "str"),
    "obs_bucket_name": (("obs_bucket_name",), "str"),
    "user_def_obs": (("user_def_obs",), "bool"),
    "updated_at": (("updated_at",), "time"),
    "expires_at": (("expires_at",), "time"),  # "" for an instance paid per use: no time, no reject
}
_POLICY: Fields = {
    "name": (("name",), "str"),
    "description": (("description",), "str"),
    "src_registry_id": (("src_registry", "id"), "int"),
    "dest_registry_id": (("dest_registry", "id"), "int"),
    "dest_namespace": (("dest_namespace",), "str"),
    "trigger_type": (("trigger", "type"), "str"),
    "trigger_cron": (("trigger", "trigger_settings", "cron"), "str"),
    "filters": (("filters",), "json"),
    "repo_scope_mode": (("repo_scope_mode",), "str"),
    "override": (("override",), "bool"),
    "enabled": (("enabled",), "bool"),
    "created_at": (("created_at",), "time"),
    "updated_at": (("updated_at",), "time"),
}
# a registry's credential: its type, and whether its secret is set (the landing holds it masked, and the
# access key and secret are never read into a column)
_REGISTRY: Fields = {
    "name": (("name",), "str"),
    "description": (("description",), "str"),
    "region_id": (("region_id",), "str"),
    "type": (("type",), "str"),
    "url": (("url",), "str"),
    "remote_instance_id": (("instance_id",), "str"),
    "insecure": (("insecure",), "bool"),
    "status": (("status",), "str"),
    "created_at": (("created_at",), "time"),
    "updated_at": (("updated_at",), "time"),
    "credential_type": (("credential", "type"), "str"),
    "credential_set": (("credential", "access_secret"), "set"),
}
_EXECUTION: Fields = {
    "policy_id": (("policy_id",), "int"),
    "status": (("status",), "str"),
    "status_text": (("status_text",), "str"),
    "trigger": (("trigger",), "str"),
    "total": (("total",), "int"),
    "succeed": (("succeed",), "int"),
    "failed": (("failed",), "int"),
    "in_progress": (("in_progress",), "int"),
    "stopped": (("stopped",), "int"),
    "created_at": (("created_at",), "time"),
    "updated_at": (("updated_at",), "time"),
}


@dataclass(frozen=True)
class Listed:
    """The newest record of one listed object, where it was found, and the runs that first and last listed it."""

    record: dict[str, Any]
    first_seen_run: str
    last_seen_run: str
    page_offset: int = 0
    position: int = 0


@dataclass
class Listings:
    """What the landed listings hold: the newest record per key, and the records no key could be read from."""

    records: dict[str, dict[tuple[str, Any], Listed]] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    instances: set[str] = field(default_factory=set)  # instances whose policies or executions were listed


_KEY_READERS: dict[str, Callable[[Any], Read]] = {
    "instances": read_instance_id,
    "policies": read_int,
    "registries": read_int,
    "executions": read_int,
}
_SINGULAR = {"instances": "instance", "policies": "policy", "registries": "registry", "executions": "execution"}


def read_listings(landing: Landing) -> Listings:
    """Every landed listing, oldest run first, into :class:`Listings`."""
    out = Listings()
    for kind, read_key in _KEY_READERS.items():
        found: dict[tuple[str, Any], Listed] = {}
        unkeyed: dict[tuple[str, str], dict[str, Any]] = {}  # one reject per distinct unkeyable record
        for manifest in landing.manifests(kind):
            run_id = str(manifest["run_id"])
            if kind != "instances":
                out.instances.add(str(manifest["instance_id"]))
            for page in manifest["pages"]:
                body = json.loads(Landing.read_page(manifest["folder"], page))
                records = body.get(kind) if isinstance(body, dict) else None
                for position, record in enumerate(records if isinstance(records, list) else []):
                    key, why = read_key(record.get("id")) if isinstance(record, dict) else (None, "not an object")
                    instance_id = str(manifest.get("instance_id") or key)
                    if key is None:
                        raw = json.dumps(record, ensure_ascii=False)
                        if kind == "instances":
                            log.warning("an instance listed in run %s has no usable id (%s): %s", run_id, why, raw)
                            continue
                        unkeyed[(instance_id, raw)] = _reject(
                            instance_id,
                            f"{_SINGULAR[kind]}.id",
                            why or "no id",
                            raw,
                            run_id,
                            int(page["offset"]),
                            position,
                        )
                        continue
                    seen = Listed(record, run_id, run_id, int(page["offset"]), position)
                    old = found.get((instance_id, key))
                    if old is not None:  # the newest listing's record wins; the runs span both
                        newest = seen if old.last_seen_run <= run_id else old
                        first, last = min(old.first_seen_run, run_id), max(old.last_seen_run, run_id)
                        seen = dataclasses.replace(newest, first_seen_run=first, last_seen_run=last)
                    found[(instance_id, key)] = seen
        out.records[kind] = found
        out.rejects.extend(unkeyed.values())
    return out


def _reject(
    instance_id: str, name: str, error: str, raw: str, run_id: str, page_offset: int, position: int, **more: Any
) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "execution_id": None,
        "task_id": None,
        "field": name,
        "error": error,
        "raw": raw,
        "run_id": run_id,
        "page_offset": page_offset,
        "position": position,
        "execution_month": LISTINGS_MONTH,
        **more,
    }


def _read_fields(
    kind: str,
    fields: Fields,
    instance_id: str,
    seen: Listed,
    rejects: list[Any],
    **keys: Any,
) -> dict[str, Any]:
    """The columns of one record; each unreadable field becomes a reject of its own."""
    row: dict[str, Any] = {}
    for column, (path, reader) in fields.items():
        value: Any = seen.record
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        row[column], why = READERS[reader](value)
        if why is not None:
            rejects.append(
                _reject(
                    instance_id,
                    f"{_SINGULAR[kind]}.{'.'.join(path)}",
                    why,
                    json.dumps(seen.record, ensure_ascii=False),
                    seen.last_seen_run,
                    seen.page_offset,
                    seen.position,
                    **keys,
                )
            )
    return row


def _table(table: Table, rows: Iterable[dict[str, Any]]) -> pa.Table:
    out: dict[str, list[Any]] = {name: [] for name in table.columns}
    for row in rows:
        for name in table.columns:
            out[name].append(row.get(name))
    return pa.table(out, schema=table.schema)


def small_tables(
    landing: Landing, fetched: dict[tuple[str, int], tuple[str, str | None]]
) -> tuple[dict[str, pa.Table], set[str]]:
    """The instances, policies, registries and executions tables, and the listings' rejects (as ``"rejects"``), from the
    whole landing; and the instances whose listings the landing holds (their rejects partition is rewritten).
    ``fetched``: (instance, execution) to the run id of the task fetch loaded for it and the execution's
    status then."""
    listings = read_listings(landing)
    rejects = listings.rejects
    instances, policies, registries, executions = [], [], [], []
    for (instance_id, _), seen in sorted(listings.records["instances"].items()):
        instances.append(
            {"instance_id": instance_id, "first_seen_run": seen.first_seen_run, "last_seen_run": seen.last_seen_run}
            | _read_fields("instances", _INSTANCE, instance_id, seen, rejects)
        )
    for (instance_id, policy_id), seen in sorted(listings.records["policies"].items()):
        policies.append(
            {"instance_id": instance_id, "policy_id": policy_id}
            | {"first_seen_run": seen.first_seen_run, "last_seen_run": seen.last_seen_run}
            | _read_fields("policies", _POLICY, instance_id, seen, rejects)
        )
    for (instance_id, registry_id), seen in sorted(listings.records["registries"].items()):
        registries.append(
            {"instance_id": instance_id, "registry_id": registry_id}
            | {"first_seen_run": seen.first_seen_run, "last_seen_run": seen.last_seen_run}
            | _read_fields("registries", _REGISTRY, instance_id, seen, rejects)
        )
    for key, seen in sorted(listings.records["executions"].items()):
        row = _read_fields("executions", _EXECUTION, key[0], seen, rejects, execution_id=key[1])
        executions.append(
            {"instance_id": key[0], "execution_id": key[1]}
            | row
            | {
                "execution_month": execution_month(seen.record.get("created_at")),
                "first_seen_run": seen.first_seen_run,
                "last_seen_run": seen.last_seen_run,
                "tasks_run": fetched[key][0] if key in fetched else None,
                "tasks_status": fetched[key][1] if key in fetched else None,
            }
        )
    listings.instances.update(i for (i, _) in listings.records["instances"])
    tables = {
        INSTANCES.name: _table(INSTANCES, instances),
        POLICIES.name: _table(POLICIES, policies),
        REGISTRIES.name: _table(REGISTRIES, registries),
        EXECUTIONS.name: _table(EXECUTIONS, executions),
        REJECTS.name: _table(REJECTS, sorted(rejects, key=_reject_order)),
    }
    return tables, listings.instances


def _reject_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["instance_id"], row["field"].split(".")[0], row["page_offset"] or 0, row["position"], row["field"])
