"""The listings of an extract: the instances in scope, then each one's policies, executions and registries
(replication targets), every page landed. A listing is small: it is paged one request at a time."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipeline.api.client import SwrClient
from pipeline.api.paging import MAX_LIMIT, iterate_pages
from pipeline.config import Settings
from pipeline.errors import ApiError, AuthError, Interrupted, Stopped, SwrEtlError
from pipeline.extraction.pages import land_page, rows_and_total
from pipeline.extraction.summary import ExtractSummary
from pipeline.landing import Landing
from pipeline.transform.values import read_instance_id, read_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutionRef:
    """An execution in scope, with its record as the executions listing gave it."""

    instance_id: str
    execution_id: int
    record: dict[str, Any]


class Lister:
    """Lists what an extract fetches, landing every page. A failed instance is counted in ``summary`` and
    added to ``errors``; the others go on."""

    def __init__(
        self,
        settings: Settings,
        client: SwrClient,
        landing: Landing,
        run_id: str,
        summary: ExtractSummary,
        errors: list[SwrEtlError],
    ) -> None:
        self.settings = settings
        self.client = client
        self.landing = landing
        self.run_id = run_id
        self.summary = summary
        self._errors = errors
        self._lock = threading.Lock()

    def _land_listing(self, kind: str, key: str, path: str, extra: dict[str, Any], **keys: str | int) -> list[Any]:
        """Page a small listing one request at a time, land each page, return the rows (de-duplicated by id)."""
        writer = self.landing.fetch(kind, self.run_id, **keys)
        rows: dict[Any, Any] = {}

        def fetch(offset: int, limit: int) -> tuple[list[Any], int]:
            params = {**extra, "offset": offset, "limit": limit}
            response = self.client.get(path, params)
            page_rows, total = rows_and_total(response, key)
            writer.add(land_page(writer, response, offset, limit, len(page_rows), total))
            return page_rows, total

        for page in iterate_pages(fetch, MAX_LIMIT, key=_row_key):
            for row in page.rows:
                rows.setdefault(_row_key(row), row)
        writer.complete(rows=len(rows), filters=extra)
        return list(rows.values())

    def list_instances(self) -> list[str]:
        """The instances in scope: those given (``--instance-id``), or every one the project lists."""
        instances = self._land_listing("instances", "instances", self.client.path("instances"), {})
        listed = []
        for record in instances:
            iid, why = read_instance_id(record.get("id")) if isinstance(record, dict) else (None, "not an object")
            if iid is None:
                project = self.settings.project_id
                log.warning("an instance listed by project %s has no usable id (%s): skipped", project, why)
            else:
                listed.append(iid)
        wanted = self.settings.instance_ids or tuple(listed)
        for iid in wanted:
            if iid not in listed:
                log.warning("instance %s is not listed by project %s; trying it anyway", iid, self.settings.project_id)
        return list(wanted)

    def list_every_instance(self, instances: list[str]) -> list[ExecutionRef]:
        """The executions of every instance, listed side by side (a project with many instances pays one round
        of latency). An instance that fails (its listing refused, an id no folder can be named by) is counted
        and reported; the others go on. Credentials refused (401) stop everything: no other call would pass."""
        refs: list[ExecutionRef] = []
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, max(1, len(instances)))) as pool:
            futures = {pool.submit(self.list_executions, iid): iid for iid in instances}
            for future in futures:
                try:
                    refs.extend(future.result())
                except AuthError as exc:
                    if exc.status == 401:
                        raise
                    self._instance_failed(futures[future], exc)
                except SwrEtlError as exc:
                    self._instance_failed(futures[future], exc)
        return refs

    def _instance_failed(self, instance_id: str, exc: SwrEtlError) -> None:
        self.summary.instances_failed += 1
        self.summary.errors.append(f"instance {instance_id!r}: {exc}")
        self._errors.append(exc)
        log.error("instance %r could not be listed, its executions are not fetched: %s", instance_id, exc)

    def list_executions(self, instance_id: str) -> list[ExecutionRef]:
        """The executions in scope of one instance (all, or those of the given policies); its policies are
        listed and landed too."""
        policies = self._land_listing(
            "policies",
            "policies",
            self.client.path("instances", instance_id, "replication", "policies"),
            {},
            instance_id=instance_id,
        )
        with self._lock:
            self.summary.policies += len(policies)
        path = self.client.path("instances", instance_id, "replication", "executions")
        filters: list[dict[str, Any]] = [{"policy_id": p} for p in self.settings.policy_ids] or [{}]
        records: dict[int, dict[str, Any]] = {}
        for extra in filters:
            for record in self._land_listing(
                "executions", "executions", path, extra, instance_id=instance_id, **_filter_key(extra)
            ):
                eid, why = read_int(record.get("id")) if isinstance(record, dict) else (None, "not an object")
                if eid is None:
                    log.warning(
                        "an execution listed by instance %s has no usable id (%s): its tasks are not fetched, "
                        "and the record is in rejects",
                        instance_id,
                        why,
                    )
                else:
                    records.setdefault(eid, record)
        self.list_registries(instance_id)
        wanted = self.settings.execution_ids
        return [
            ExecutionRef(instance_id, eid, rec) for eid, rec in sorted(records.items()) if not wanted or eid in wanted
        ]

    def list_registries(self, instance_id: str) -> None:
        """Land the registries (replication targets) of one instance: their credentials are masked as each page
        is landed. Listed after the executions, and a failure stops nothing: the instance's executions are
        fetched all the same. Refused (403) or failed, the instance is counted failed, as when its policies
        cannot be listed; a 404 (a service without the endpoint) is only a warning. 401 stops everything."""
        path = self.client.path("instances", instance_id, "registries")
        try:
            registries = self._land_listing("registries", "registries", path, {}, instance_id=instance_id)
            with self._lock:
                self.summary.registries += len(registries)
        except (Stopped, Interrupted):
            raise
        except AuthError as exc:
            if exc.status == 401:
                raise
            self._registries_failed(instance_id, exc)
        except ApiError as exc:
            if exc.status != 404:
                self._registries_failed(instance_id, exc)
            else:
                log.warning(
                    "instance %r has no registries listing (HTTP 404): its registries are not listed", instance_id
                )
        except SwrEtlError as exc:
            self._registries_failed(instance_id, exc)

    def _registries_failed(self, instance_id: str, exc: SwrEtlError) -> None:
        with self._lock:
            self.summary.instances_failed += 1
            self.summary.errors.append(f"instance {instance_id!r}: registries: {exc}")
            self._errors.append(exc)
        log.error(
            "the registries of instance %r could not be listed (its executions are fetched): %s", instance_id, exc
        )


def _row_key(row: Any) -> str:
    """What makes two rows of a listing the same row: the id, whatever JSON it is (a list is no dict key)."""
    if isinstance(row, dict) and row.get("id") is not None:
        return "id:" + json.dumps(row["id"], sort_keys=True, default=repr)
    return "row:" + json.dumps(row, sort_keys=True, default=repr)


def _filter_key(extra: dict[str, Any]) -> dict[str, str | int]:
    """A listing fetched with a policy filter lands in its own folder, so filtered fetches never mix."""
    return {"policy_id": extra["policy_id"]} if "policy_id" in extra else {}
