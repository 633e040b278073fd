"""Transform and load on small hand-made landings, whose every output row was checked by hand."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import VENDOR_EXAMPLE

from pipeline.landing import Landing
from pipeline.load import load_lake
from pipeline.schema import INSTANCES, TABLES
from pipeline.transform import cast_time, describe_invalid_json, lanes, parse_time

IID = "inst-1"
EXECUTION = {
    "id": 7,
    "policy_id": 3,
    "status": "Failed",
    "status_text": "",
    "trigger": "manual",
    "total": 5,
    "failed": 1,
    "succeed": 3,
    "in_progress": 0,
    "stopped": 1,
    "created_at": "2026-10-31T23:59:00Z",
    "updated_at": "2026-11-01T00:10:00.5+08:00",
}
D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")


def resource(repo: str, artifacts: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "artifact",
        "metadata": {"repository": {"name": repo, "metadata": {"public": "true"}}, "artifacts": artifacts},
        "registry": None,
        "deleted": False,
        "is_delete_tag": False,
        "override": True,
        **extra,
    }


def task(task_id: int, src: Any, dst: Any, **extra: Any) -> dict[str, Any]:
    out = {
        "id": task_id,
        "execution_id": 7,
        "resource_type": "artifact",
        "src_resource": src if not isinstance(src, dict) else json.dumps(src),
        "dst_resource": dst if not isinstance(dst, dict) else json.dumps(dst),
        "operation": "copy",
        "job_id": f"job-{task_id}",
        "status": "Succeed",
        "StatusRevision": 100 + task_id,
        "start_time": "2026-11-01T08:00:00.123456789Z",
        "end_time": "2026-11-01T08:00:10.5Z",
    }
    out.update(extra)
    return {k: v for k, v in out.items() if v is not ...}


ARTS = [
    {"type": "IMAGE", "digest": D1, "labels": None, "tags": ["1.0", "latest"]},
    {"type": "IMAGE", "digest": D2, "labels": None, "tags": None},
]
PAGE_0 = [
    # 1: a clean copy; the destination lost tag "latest"
    task(1, resource("team/app", ARTS), resource("mirror/app", [{**ARTS[0], "tags": ["1.0"]}, ARTS[1]])),
    # 2: the destination is an object, not a string (valid); the source is truncated JSON
    task(2, '{"type":"artifact","metadata":{"repo', {**resource("mirror/x", [])}, status="Failed"),
    # 3: wrong types: artifacts is a string; the destination's tags are a string; no end time yet
    task(
        3,
        resource("team/bad", "oops"),
        resource("mirror/bad", [{"type": "IMAGE", "digest": D3, "tags": "latest"}]),
        status="InProgress",
        end_time="",
    ),
]
PAGE_100 = [
    # 4: no operation, a start time that does not parse, a null destination, empty artifact list on the source
    task(4, resource("team/empty", []), None, operation=..., start_time="yesterday", status="Stopped"),
    # 1 again, seen with a higher revision on a later page: this one wins
    task(1, resource("team/app", ARTS[:1]), resource("mirror/app", ARTS[:1]), StatusRevision=999),
    # no usable id: not a task row, kept in rejects
    task(0, resource("a/b", []), resource("c/d", [])) | {"id": "x-9"},
    {k: v for k, v in task(0, resource("a/b", []), resource("c/d", [])).items() if k != "id"},
]


def land(
    data_dir: Path,
    pages: list[Any],
    execution: dict[str, Any] = EXECUTION,
    run_id: str = "20261101T000000000Z-aaaaaa",
    counts: list[int] | None = None,
    repeats: int | None = None,
) -> None:
    """A landing as extract writes it; a page is a list of tasks, or raw bytes landed as they are (with the
    row count ``counts`` gives, else 1). ``repeats``: the manifest's ``task_id_repeats`` (none: as an earlier
    version of extract wrote it)."""
    landing = Landing(data_dir)
    listing = landing.fetch("executions", run_id, instance_id=IID)
    body = json.dumps({"executions": [execution], "total": 1}).encode()
    common = {"path": "/p", "params": {}, "limit": 100, "status": 200, "request_id": None, "fetched_at": "t"}
    listing.add(listing.write_page(body=body, offset=0, rows=1, total=1, **common))
    listing.complete()
    writer = landing.fetch("tasks", run_id, instance_id=IID, execution_id=execution["id"])
    total = sum(len(p) if isinstance(p, list) else 1 for p in pages)
    for n, tasks in enumerate(pages):
        body = tasks if isinstance(tasks, bytes) else json.dumps({"tasks": tasks, "total": total}).encode()
        rows = counts[n] if counts is not None else len(tasks) if isinstance(tasks, list) else 1
        writer.add(writer.write_page(body=body, offset=100 * n, rows=rows, total=total, **common))
    writer.complete(execution=execution, **({} if repeats is None else {"task_id_repeats": repeats}))


def rows(data_dir: Path, table: str, order: str) -> list[dict[str, Any]]:
    t = TABLES[table]
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    pattern = "/".join([str(data_dir / "lake" / table), *["*"] * len(t.partition_by), "*.parquet"])
    source = f"read_parquet('{pattern}', hive_partitioning = true)"
    if not list((data_dir / "lake" / table).rglob("*.parquet")):
        return []
    result = db.sql(f"SELECT {', '.join(t.columns)} FROM {source} ORDER BY {order}")
    return [dict(zip(t.columns, r, strict=True)) for r in result.fetchall()]


def ts(text: str) -> datetime:
    parsed = parse_time(text)
    assert parsed is not None
    return parsed


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    land(tmp_path, [PAGE_0, PAGE_100])
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == 4
    assert summary.stats.duplicates == 1
    return tmp_path


@pytest.mark.parametrize(("pretty", "bound"), [(False, "tasks"), (True, "tasks"), (False, "bytes")])
def test_an_execution_cut_into_parts_loads_exactly_like_a_whole_one(
    golden: Path,
    tmp_path: Path,
    pretty: bool,
    bound: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An execution larger than a batch (in tasks, or in the bytes of its pages) is loaded a few pages at a
    time, its duplicated ids settled across all its pages first (task 1 is listed on both pages: the later,
    higher revision wins, and counts once), also when a page is spread over lines."""
    parts = tmp_path / "parts"
    second: Any = json.dumps({"tasks": PAGE_100, "total": 5}, indent=2).encode() if pretty else PAGE_100
    land(parts, [PAGE_0, second])
    caplog.set_level(logging.INFO, logger="pipeline.transform")
    bounds = {"batch_tasks": 1} if bound == "tasks" else {"batch_bytes": 1}
    planned: list[Any] = []
    monkeypatch.setattr("pipeline.load.loader.lanes", lambda *a: planned.append(lanes(*a)) or planned[-1])
    summary = load_lake(parts, version="20261101T000001000Z-bbbbbb", workers=1, **bounds)
    assert [[len(part.pages) for part in batch] for lane in planned[0] for batch in lane] == [[1], [1]]
    assert (summary.stats.tasks, summary.stats.duplicates) == (4, 1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    for table, order in (
        ("tasks", "task_id"),
        ("artifacts", "task_id, side, artifact_idx"),
        ("tags", "task_id, side, artifact_idx, tag_idx"),
        ("rejects", "page_offset, position, field"),
    ):
        assert rows(parts, table, order) == rows(golden, table, order), table


def test_a_fetch_in_parts_whose_extract_saw_no_id_twice_is_not_settled_and_loads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``task_id_repeats`` 0 in its manifest, a fetch too large for a batch is loaded part by part without
    reading its pages for their ids first (the settling), into the same rows. A manifest that says so wrongly
    (task 1 is listed on both pages) loses nothing and loads no task twice: the task loaded first stays (here,
    not the one of the highest revision), the later one is rejected."""
    from pipeline.transform import Transformer

    settled: list[Any] = []
    real = Transformer._settle
    monkeypatch.setattr(Transformer, "_settle", lambda self, part: settled.append(part) or real(self, part))
    second = [t for t in PAGE_100 if t.get("id") != 1]
    for name, repeats, parts_settled in (("settled", None, 2), ("trusted", 0, 0)):
        land(tmp_path / name, [PAGE_0, second], repeats=repeats)
        before = len(settled)
        summary = load_lake(tmp_path / name, version="20261101T000001000Z-bbbbbb", batch_tasks=1, workers=1)
        assert (summary.stats.tasks, summary.stats.duplicates) == (4, 0)
        assert len(settled) - before == parts_settled
    for table, order in (("tasks", "task_id"), ("tags", "task_id, side, artifact_idx, tag_idx"), ("rejects", "field")):
        assert rows(tmp_path / "trusted", table, order) == rows(tmp_path / "settled", table, order), table
    # three parts: the third repeats a task of the first, not of the part just before it
    land(tmp_path / "wrong", [PAGE_0, second, [t for t in PAGE_100 if t.get("id") == 1]], repeats=0)
    summary = load_lake(tmp_path / "wrong", version="20261101T000001000Z-bbbbbb", batch_tasks=1, workers=1)
    assert (summary.stats.tasks, summary.stats.duplicates) == (4, 1)
    got = rows(tmp_path / "wrong", "tasks", "task_id")
    assert [r["task_id"] for r in got] == [1, 2, 3, 4]
    assert got[0]["status_revision"] == 101  # page 0's task 1, loaded with the first part
    tags = [
        (r["task_id"], r["side"], r["artifact_idx"], r["tag_idx"]) for r in rows(tmp_path / "wrong", "tags", "task_id")
    ]
    assert len(tags) == len(set(tags)) > 0  # and its artifacts and tags once
    (reject,) = [r for r in rows(tmp_path / "wrong", "rejects", "page_offset") if r["field"] == "id" and r["task_id"]]
    assert (reject["task_id"], reject["page_offset"], reject["position"], reject["raw"]) == (1, 200, 0, "1")
    assert reject["error"] == "task id repeats a task loaded from an earlier part of the execution: not loaded again"
    assert len(settled) == 2


def test_golden_tasks(golden: Path) -> None:
    got = rows(golden, "tasks", "task_id")
    common = {"instance_id": IID, "execution_id": 7, "policy_id": 3, "resource_type": "artifact"}
    common |= {"run_id": "20261101T000000000Z-aaaaaa", "execution_month": "2026-10"}
    start, end = ts("2026-11-01T08:00:00.123456Z"), ts("2026-11-01T08:00:10.5Z")
    assert got == [
        {
            **common,
            "task_id": 1,
            "operation": "copy",
            "job_id": "job-1",
            "status": "Succeed",
            "status_revision": 999,
            "start_time": start,
            "end_time": end,
            "duration_s": pytest.approx(10.376544),
            "src_repository": "team/app",
            "dst_repository": "mirror/app",
            "src_artifacts": 1,
            "dst_artifacts": 1,
            "src_tags": 2,
            "dst_tags": 2,
            "src_public": True,
            "dst_public": True,
            "src_deleted": False,
            "dst_deleted": False,
            "dst_override": True,
            "src_rejected": False,
            "dst_rejected": False,
        },
        {
            **common,
            "task_id": 2,
            "operation": "copy",
            "job_id": "job-2",
            "status": "Failed",
            "status_revision": 102,
            "start_time": start,
            "end_time": end,
            "duration_s": pytest.approx(10.376544),
            "src_repository": None,
            "dst_repository": "mirror/x",
            "src_artifacts": None,
            "dst_artifacts": 0,
            "src_tags": None,
            "dst_tags": 0,
            "src_public": None,
            "dst_public": True,
            "src_deleted": None,
            "dst_deleted": False,
            "dst_override": True,
            "src_rejected": True,
            "dst_rejected": False,
        },
        {
            **common,
            "task_id": 3,
            "operation": "copy",
            "job_id": "job-3",
            "status": "InProgress",
            "status_revision": 103,
            "start_time": start,
            "end_time": None,
            "duration_s": None,
            "src_repository": None,
            "dst_repository": None,
            "src_artifacts": None,
            "dst_artifacts": None,
            "src_tags": None,
            "dst_tags": None,
            "src_public": None,
            "dst_public": None,
            "src_deleted": None,
            "dst_deleted": None,
            "dst_override": None,
            "src_rejected": True,
            "dst_rejected": True,
        },
        {
            **common,
            "task_id": 4,
            "operation": None,
            "job_id": "job-4",
            "status": "Stopped",
            "status_revision": 104,
            "start_time": None,
            "end_time": end,
            "duration_s": None,
            "src_repository": "team/empty",
            "dst_repository": None,
            "src_artifacts": 0,
            "dst_artifacts": None,
            "src_tags": 0,
            "dst_tags": None,
            "src_public": True,
            "dst_public": None,
            "src_deleted": False,
            "dst_deleted": None,
            "dst_override": None,
            "src_rejected": False,
            "dst_rejected": True,
        },
    ]


def test_golden_artifacts_and_tags(golden: Path) -> None:
    key = {"instance_id": IID, "execution_id": 7, "task_id": 1, "execution_month": "2026-10"}
    assert rows(golden, "artifacts", "task_id, side DESC, artifact_idx") == [
        {**key, "side": "src", "artifact_idx": 0, "repository": "team/app", "artifact_type": "IMAGE", "digest": D1,
         "tag_count": 2},
        {**key, "side": "dst", "artifact_idx": 0, "repository": "mirror/app", "artifact_type": "IMAGE",
         "digest": D1, "tag_count": 2},
    ]  # fmt: skip
    assert rows(golden, "tags", "task_id, side DESC, artifact_idx, tag_idx") == [
        {**key, "side": "src", "artifact_idx": 0, "tag_idx": 0, "repository": "team/app", "digest": D1, "tag": "1.0"},
        {**key, "side": "src", "artifact_idx": 0, "tag_idx": 1, "repository": "team/app", "digest": D1,
         "tag": "latest"},
        {**key, "side": "dst", "artifact_idx": 0, "tag_idx": 0, "repository": "mirror/app", "digest": D1,
         "tag": "1.0"},
        {**key, "side": "dst", "artifact_idx": 0, "tag_idx": 1, "repository": "mirror/app", "digest": D1,
         "tag": "latest"},
    ]  # fmt: skip


def test_golden_rejects(golden: Path) -> None:
    got = rows(golden, "rejects", "page_offset, position, field")
    common = {"instance_id": IID, "execution_id": 7, "run_id": "20261101T000000000Z-aaaaaa"}
    common |= {"execution_month": "2026-10"}
    truncated = PAGE_0[1]["src_resource"]
    assert got == [
        {**common, "task_id": 2, "field": "src_resource", "error": describe_invalid_json(truncated),
         "raw": truncated, "page_offset": 0, "position": 1},
        {**common, "task_id": 3, "field": "dst_resource", "error": "the tags of an artifact are not an array",
         "raw": PAGE_0[2]["dst_resource"], "page_offset": 0, "position": 2},
        {**common, "task_id": 3, "field": "src_resource", "error": "metadata.artifacts is varchar, expected an array",
         "raw": PAGE_0[2]["src_resource"], "page_offset": 0, "position": 2},
        {**common, "task_id": 4, "field": "dst_resource", "error": "missing or null", "raw": None,
         "page_offset": 100, "position": 0},
        {**common, "task_id": 4, "field": "operation", "error": "missing", "raw": None, "page_offset": 100,
         "position": 0},
        {**common, "task_id": 4, "field": "start_time", "error": "not a timestamp", "raw": "yesterday",
         "page_offset": 100, "position": 0},
        {**common, "task_id": None, "field": "id", "error": "task id is not an integer: not loaded", "raw": "x-9",
         "page_offset": 100, "position": 2},
        {**common, "task_id": None, "field": "id", "error": "task has no id: not loaded",
         "raw": json.dumps(PAGE_100[3]), "page_offset": 100, "position": 3},
    ]  # fmt: skip
    assert truncated.startswith('{"type":"artifact"')


def test_golden_executions(golden: Path) -> None:
    assert rows(golden, "executions", "execution_id") == [
        {
            "instance_id": IID,
            "execution_id": 7,
            "policy_id": 3,
            "status": "Failed",
            "status_text": "",
            "trigger": "manual",
            "total": 5,
            "succeed": 3,
            "failed": 1,
            "in_progress": 0,
            "stopped": 1,
            "created_at": datetime(2026, 10, 31, 23, 59, tzinfo=UTC),
            "updated_at": datetime(2026, 10, 31, 16, 10, 0, 500000, tzinfo=UTC),
            "execution_month": "2026-10",
            "first_seen_run": "20261101T000000000Z-aaaaaa",
            "last_seen_run": "20261101T000000000Z-aaaaaa",
            "tasks_run": "20261101T000000000Z-aaaaaa",
            "tasks_status": "Failed",
        }
    ]


def seed_example() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(VENDOR_EXAMPLE.read_text())
    return body


def test_the_vendors_own_example_response(tmp_path: Path) -> None:
    example = seed_example()
    (raw_task,) = example["tasks"]
    execution = {**EXECUTION, "id": 83}
    land(tmp_path, [example["tasks"]], execution)
    load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")

    (row,) = rows(tmp_path, "tasks", "task_id")
    assert row["task_id"] == 1927
    assert row["start_time"] == datetime(2021, 2, 6, 8, 1, 6, 42660, tzinfo=UTC)
    assert row["end_time"] == datetime(2021, 2, 6, 8, 34, 46, tzinfo=UTC)
    assert row["duration_s"] == pytest.approx(2019.95734)
    assert (
        row["status"] == "Succeed"
        and row["status_revision"] == 1612598465
        and row["job_id"] == "3541b99f9e562586ffbf3445"
    )
    assert row["operation"] is None and row["src_rejected"] and row["dst_rejected"]

    rejects = {r["field"]: r for r in rows(tmp_path, "rejects", "field")}
    assert set(rejects) == {"src_resource", "dst_resource", "operation"}
    src = rejects["src_resource"]
    assert src["raw"] == raw_task["src_resource"]  # kept whole, byte for byte
    assert src["error"].startswith("invalid JSON: a complete JSON value followed by ")
    assert 'trailing text starting \'", "dst_resource":"{"type"' in src["error"]
    assert rejects["dst_resource"]["error"] == "missing or null" and rejects["dst_resource"]["raw"] is None
    assert rejects["operation"]["error"] == "missing"
    assert rows(tmp_path, "artifacts", "task_id") == []


def test_pages_that_are_not_lists_of_tasks_are_rejected_whole_and_the_rest_loads(tmp_path: Path) -> None:
    good = task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))
    land(tmp_path, [[good, "not a task", 42]])
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == 1
    assert [r["task_id"] for r in rows(tmp_path, "tasks", "task_id")] == [1]
    rejects = rows(tmp_path, "rejects", "position")
    assert [(r["field"], r["error"], r["raw"], r["position"]) for r in rejects] == [
        ("task", "task is not an object", '"not a task"', 1),
        ("task", "task is not an object", "42", 2),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"a": 1} tail',
            "invalid JSON: a complete JSON value followed by 5 characters of trailing text starting ' tail'",
        ),
        ('{"a": ', "invalid JSON: Expecting value: line 1 column 7 (char 6)"),
    ],
)
def test_invalid_json_is_described(text: str, expected: str) -> None:
    assert describe_invalid_json(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-06T08:01:06.04266Z", datetime(2021, 2, 6, 8, 1, 6, 42660, tzinfo=UTC)),
        ("2021-02-06T08:01:06Z", datetime(2021, 2, 6, 8, 1, 6, tzinfo=UTC)),
        ("2021-02-06T16:01:06.123456789+08:00", datetime(2021, 2, 6, 8, 1, 6, 123456, tzinfo=UTC)),
        ("2021-02-06 08:01:06", datetime(2021, 2, 6, 8, 1, 6, tzinfo=UTC)),
        ("", None),
        ("soon", None),
        (None, None),
        # DuckDB reads these, but no Python datetime holds them (-infinity used to raise)
        ("infinity", None),
        ("-infinity", None),
        ("12021-02-06T08:01:06Z", None),
    ],
)
def test_times(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2021-02-06T08:01:06.04266Z",
        "2021-02-06T16:01:06.1-08:30",
        "2021-02-06T08:01:06-00:00",
        "2021-02-06T08:01:06+23:59",
        "2021-02-06T24:00:00Z",  # the next midnight, to both
        "2021-06-30T23:59:60Z",  # a leap second: Python refuses it, DuckDB decides
        "2021-02-30T00:00:00Z",
        "2021-02-06T08:61:06Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59.999999-01:00",  # after year 9999 in UTC
        " 2021-02-06T08:01:06Z",
    ],
)
def test_python_reads_the_apis_times_exactly_as_duckdb_casts_them(text: str) -> None:
    """The API's own form is read by Python, every other by DuckDB: both give the same instant, or None."""
    assert parse_time(text) == cast_time(text)


def test_pages_that_are_not_json_or_whose_tasks_are_not_a_list_are_kept_whole(tmp_path: Path) -> None:
    good = task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))
    html = b"<html><body>502 Bad Gateway</body></html>"
    land(tmp_path, [[good], b'{"tasks": "oops", "total": 1}', html])
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == 1
    rejects = rows(tmp_path, "rejects", "page_offset")
    assert [(r["field"], r["raw"], r["page_offset"]) for r in rejects] == [
        ("tasks", '"oops"', 100),
        ("page", html.decode(), 200),
    ]
    assert rejects[0]["error"] == "the page's tasks are not a list"
    assert rejects[1]["error"] == "page is not JSON: Malformed JSON at byte 0 of input: unexpected character."


@pytest.mark.parametrize("count", [0, 1])
@pytest.mark.parametrize(
    "bad",
    [
        b"<html>502</html>",
        b'{"tasks":[],"tot',
        b'{"tasks":' + b"[" * 100_000,  # deeper than Python's JSON reader goes
        b'{"tasks":[{"id":"2","status":"\\ud800"}],"total":2}',  # Python reads it, DuckDB does not
        b'{"tasks":[],"total":1}\n{"tasks":[],"total":1}',  # two documents
    ],
)
def test_a_page_that_does_not_parse_is_one_page_reject_whatever_rows_it_claims(
    tmp_path: Path, bad: bytes, count: int
) -> None:
    good = task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))
    land(tmp_path, [[good], bad], counts=[1, count])
    assert load_lake(tmp_path, version="20261101T000001000Z-bbbbbb").stats.tasks == 1
    page = [r for r in rows(tmp_path, "rejects", "page_offset") if r["page_offset"] == 100]
    assert [(r["field"], r["raw"]) for r in page] == [("page", bad.decode())]
    assert page[0]["error"].startswith("page is not JSON: Malformed JSON at byte ")


def test_a_page_with_a_byte_order_mark_loads_like_one_without(tmp_path: Path) -> None:
    pages = [[task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))]]
    body = json.dumps({"tasks": pages[0], "total": 1}).encode()
    land(tmp_path / "plain", pages)
    land(tmp_path / "bom", [b"\xef\xbb\xbf" + body])
    for case in ("plain", "bom"):
        load_lake(tmp_path / case, version="20261101T000001000Z-bbbbbb")
    for table, order in (("tasks", "task_id"), ("tags", "task_id, side, artifact_idx, tag_idx"), ("rejects", "field")):
        assert rows(tmp_path / "bom", table, order) == rows(tmp_path / "plain", table, order)
    assert len(rows(tmp_path / "bom", "tags", "task_id")) == 4


@pytest.mark.parametrize("batch_tasks", [1, 100])
def test_a_page_file_that_cannot_be_read_at_all_stops_the_load(tmp_path: Path, batch_tasks: int) -> None:
    """A landed file that is gone (or unreadable) is a broken landing, not a bad record: the load stops with
    LandingError naming it (also while the ids of an execution in parts are settled), the lake untouched."""
    from pipeline.errors import LandingError

    land(tmp_path, [PAGE_0, PAGE_100])
    (gone,) = [p for p in tmp_path.rglob("page-000000100.json.zst")]
    gone.unlink()
    with pytest.raises(LandingError, match=r"unreadable page .*page-000000100"):
        load_lake(tmp_path, version="20261101T000001000Z-bbbbbb", batch_tasks=batch_tasks, workers=1)
    assert not list((tmp_path / "lake" / "tasks").rglob("*.parquet"))


def test_an_execution_whose_times_are_objects_or_lists_loads_with_no_time(tmp_path: Path) -> None:
    """A listing's time of the wrong type (an object, a list, a number) is no time, not a stopped load."""
    land(tmp_path, [PAGE_0], execution={**EXECUTION, "created_at": {"at": 1}, "updated_at": [1]})
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == len(PAGE_0)
    ((created, updated, month),) = [
        (r["created_at"], r["updated_at"], r["execution_month"]) for r in rows(tmp_path, "executions", "execution_id")
    ]
    assert (created, updated, month) == (None, None, "unknown")
    assert {r["execution_month"] for r in rows(tmp_path, "tasks", "task_id")} == {"unknown"}


def test_a_page_file_that_expands_beyond_any_page_is_one_page_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few KiB that decompress to more than any page can hold (a zstd frame that states no size, as another
    tool's streaming writer leaves it) are refused as they expand: one ``page`` reject, the rest loads."""
    import zstandard

    monkeypatch.setattr("pipeline.landing.MAX_PAGE_BYTES", 64 << 10)
    land(tmp_path, [PAGE_0, PAGE_100])
    (page,) = tmp_path.rglob("page-000000100.json.zst")
    page.write_bytes(zstandard.ZstdCompressor(write_content_size=False).compress(b" " * (1 << 20)))
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == len(PAGE_0)
    (reject,) = [r for r in rows(tmp_path, "rejects", "page_offset") if r["page_offset"] == 100]
    assert (reject["field"], reject["raw"]) == ("page", None)
    assert reject["error"] == (
        "page could not be decompressed: the zstd data holds more than 65536 bytes, more than a page can be "
        "(its file is kept in the landing as it is)"
    )


def test_a_page_that_is_not_utf8_text_is_kept_as_far_as_it_can_be_shown(tmp_path: Path) -> None:
    good = task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))
    body = json.dumps({"tasks": [task(2, resource("a/caf@", ARTS[:1]), None)], "total": 2}).encode()
    latin1 = body.replace(b"caf@", b"caf\xe9")  # "é" in Latin-1: not UTF-8
    land(tmp_path, [[good], latin1])
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == 1
    ((reject,),) = [rows(tmp_path, "rejects", "page_offset")]
    assert (reject["field"], reject["page_offset"], reject["raw"]) == ("page", 100, latin1.decode("utf-8", "replace"))
    assert reject["error"].startswith("page is not JSON: it is not UTF-8 text (")


def test_a_page_spread_over_several_lines_loads_like_one_on_a_single_line(tmp_path: Path) -> None:
    """Pages are read as one line each (as the API sends them); a pretty-printed one is read again alone."""
    first = [task(1, resource("a/b", ARTS), resource("c/b", ARTS)), task(2, "{oops", None)]
    second = [task(3, resource("a/d", ARTS[:1]), resource("c/d", ARTS[:1]))]
    pretty = json.dumps({"tasks": second, "total": 3}, indent=2).encode()
    assert b"\n" in pretty
    land(tmp_path / "one-line", [first, second])
    land(tmp_path / "pretty", [first, pretty])
    for case in ("one-line", "pretty"):
        load_lake(tmp_path / case, version="20261101T000001000Z-bbbbbb")
    for table, order in (("tasks", "task_id"), ("tags", "task_id, side, artifact_idx, tag_idx"), ("rejects", "field")):
        assert rows(tmp_path / "pretty", table, order) == rows(tmp_path / "one-line", table, order) != []


@pytest.mark.parametrize("odd", [1, 5])
def test_odd_pages_in_a_batch_change_no_row_of_the_others(tmp_path: Path, odd: int) -> None:
    """A batch's pages are parsed in one statement. Pages spread over lines, and one that is not JSON (it is
    rejected whole, with its text), change nothing of the rows the others give."""
    pages = [[task(10 * n + k, resource("a/b", ARTS[:2]), resource("c/b", ARTS[:1])) for k in (1, 2)] for n in range(8)]
    html = b"<html><body>502 Bad Gateway</body></html>"
    odd_pages: list[Any] = [json.dumps({"tasks": p, "total": 18}, indent=2).encode() for p in pages[:odd]]
    land(tmp_path / "one-line", [*pages, html])
    land(tmp_path / "odd", [*odd_pages, *pages[odd:], html])
    for case in ("one-line", "odd"):
        load_lake(tmp_path / case, version="20261101T000001000Z-bbbbbb")
    for table, order in (("tasks", "task_id"), ("tags", "task_id, side, artifact_idx, tag_idx"), ("rejects", "field")):
        assert rows(tmp_path / "odd", table, order) == rows(tmp_path / "one-line", table, order) != []
    assert len(rows(tmp_path / "odd", "tasks", "task_id")) == 16
    ((field, raw, offset),) = [
        (r["field"], r["raw"], r["page_offset"]) for r in rows(tmp_path / "odd", "rejects", "field")
    ]
    assert (field, raw, offset) == ("page", html.decode(), 800)


def land_listing(data_dir: Path, kind: str, run_id: str, records: list[dict[str, Any]], **keys: str) -> None:
    writer = Landing(data_dir).fetch(kind, run_id, **keys)
    body = json.dumps({kind: records, "total": len(records)}).encode()
    common = {"path": "/p", "params": {}, "limit": 100, "status": 200, "request_id": None, "fetched_at": "t"}
    writer.add(writer.write_page(body=body, offset=0, rows=len(records), total=len(records), **common))
    writer.complete()


def test_instances_policies_and_executions_keep_their_history(tmp_path: Path) -> None:
    first, second = "20261101T000000000Z-aaaaaa", "20261102T000000000Z-bbbbbb"
    instance = {"id": IID, "name": "prod", "status": "Running", "spec": "swr.ee.basic", "version": "v2",
                "created_at": "2025-01-01T00:00:00Z", "charge_mode": "postPaid"}  # fmt: skip
    policy = {
        "id": 3,
        "name": "to-mirror",
        "description": "",
        "src_registry": {"id": 0},
        "dest_registry": {"id": 2},
        "dest_namespace": "mirror",
        "filters": [{"type": "name", "value": "team/**"}],
        "repo_scope_mode": "regular",
        "trigger": {"type": "scheduled", "trigger_settings": {"cron": "0 0 2 * * *"}},
        "override": True,
        "enabled": False,
        "created_at": "2025-02-01T00:00:00Z",
        "updated_at": "2025-02-02T00:00:00Z",
    }
    land_listing(tmp_path, "instances", first, [instance])
    land_listing(tmp_path, "instances", second, [{**instance, "status": "Unavailable"}])
    land_listing(tmp_path, "policies", first, [policy], instance_id=IID)
    land_listing(tmp_path, "policies", second, [{**policy, "enabled": True}], instance_id=IID)
    old = {**EXECUTION, "id": 6, "status": "Succeed"}
    land_listing(tmp_path, "executions", first, [old, EXECUTION], instance_id=IID)
    land_listing(tmp_path, "executions", second, [{**EXECUTION, "status": "Succeed"}], instance_id=IID)  # 6 is gone
    load_lake(tmp_path, version="20261102T000001000Z-cccccc")

    assert rows(tmp_path, "instances", "instance_id") == [
        {"instance_id": IID, "name": "prod", "status": "Unavailable", "spec": "swr.ee.basic", "version": "v2",
         "created_at": datetime(2025, 1, 1, tzinfo=UTC), "first_seen_run": first, "last_seen_run": second}
        | dict.fromkeys(INSTANCES.columns[6:-2]) | {"charge_mode": "postPaid"}
    ]  # fmt: skip
    assert rows(tmp_path, "policies", "policy_id") == [
        {"instance_id": IID, "policy_id": 3, "name": "to-mirror", "description": "", "src_registry_id": 0,
         "dest_registry_id": 2, "dest_namespace": "mirror", "trigger_type": "scheduled",
         "trigger_cron": "0 0 2 * * *", "filters": '[{"type": "name", "value": "team/**"}]',
         "repo_scope_mode": "regular", "override": True, "enabled": True,
         "created_at": datetime(2025, 2, 1, tzinfo=UTC), "updated_at": datetime(2025, 2, 2, tzinfo=UTC),
         "first_seen_run": first, "last_seen_run": second}
    ]  # fmt: skip
    executions = rows(tmp_path, "executions", "execution_id")
    assert [(e["execution_id"], e["status"], e["first_seen_run"], e["last_seen_run"]) for e in executions] == [
        (6, "Succeed", first, first),  # the API forgot it; the lake did not
        (7, "Succeed", first, second),
    ]


def test_ids_and_revisions_sent_as_text_with_white_space_around_them_are_read(tmp_path: Path) -> None:
    """Spaces, tabs, newlines and Unicode spaces around an id's or a revision's digits are no reason to lose the
    task; a sign other than minus, or digits with space between them, are."""
    sent = [" 7", "\t8\n", "\u00a09", "\u3000 10 ", "011", "+5", "1 2"]
    tasks = [
        task(0, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]), StatusRevision=f"\t{n}\r\n") | {"id": text}
        for n, text in enumerate(sent)
    ]
    land(tmp_path, [tasks])
    load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    got = [(r["task_id"], r["status_revision"]) for r in rows(tmp_path, "tasks", "task_id")]
    assert got == [(7, 0), (8, 1), (9, 2), (10, 3), (11, 4)]
    assert sorted(r["raw"] for r in rows(tmp_path, "rejects", "raw") if r["field"] == "id") == ["+5", "1 2"]


def test_an_id_that_is_not_a_whole_number_never_stands_in_for_another_task(tmp_path: Path) -> None:
    real = task(2, resource("team/real", ARTS[:1]), resource("mirror/real", ARTS[:1]))
    odd = task(0, resource("team/odd", ARTS[:1]), resource("mirror/odd", ARTS[:1]), StatusRevision=999) | {"id": 1.5}
    land(tmp_path, [[real, odd]])
    load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert [(r["task_id"], r["src_repository"]) for r in rows(tmp_path, "tasks", "task_id")] == [(2, "team/real")]
    (reject,) = rows(tmp_path, "rejects", "field")
    assert (reject["field"], reject["raw"], reject["error"]) == ("id", "1.5", "task id is not an integer: not loaded")


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("x", "metadata is varchar, expected an object"),
        (5, "metadata is ubigint, expected an object"),
        ({"repository": "team/app", "artifacts": []}, "metadata.repository is varchar, expected an object"),
        ({"repository": {"name": None}, "artifacts": []}, "metadata.repository.name is null, expected a string"),
        ({"repository": {"name": "a"}, "artifacts": "x"}, "metadata.artifacts is varchar, expected an array"),
        ({"repository": {"name": "a"}, "artifacts": [5]}, "an artifact is not an object"),
        ({"repository": {"name": "a"}, "artifacts": [ARTS[0], None]}, "an artifact is not an object"),
        ({"repository": {"name": "a"}, "artifacts": [{"tags": ["x"]}]}, "an artifact has no digest string"),
        ({"repository": {"name": "a"}, "artifacts": [{"digest": D1}]}, "an artifact has no tags key"),
        (
            {"repository": {"name": "a"}, "artifacts": [{"digest": D1, "tags": "x"}]},
            "the tags of an artifact are not an array",
        ),
        ({"repository": {"name": "a"}, "artifacts": [{"digest": D1, "tags": ["x", None]}]}, "a tag is not a string"),
        ({"repository": {"name": "a"}, "artifacts": None}, None),
    ],
)
def test_a_part_of_the_wrong_structure_is_named_in_the_reason(tmp_path: Path, metadata: Any, error: str | None) -> None:
    """A part given with another type than its place needs parses as NULLs, like a missing one: the reason
    still says which it was."""
    bad = {"type": "artifact", "metadata": metadata}
    land(tmp_path, [[task(1, bad, resource("c/b", ARTS[:1]))]])
    load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    found = [(r["field"], r["error"], r["raw"]) for r in rows(tmp_path, "rejects", "field")]
    assert found == ([] if error is None else [("src_resource", error, json.dumps(bad))])
    (row,) = rows(tmp_path, "tasks", "task_id")
    assert row["src_rejected"] is (error is not None)


def test_a_batch_of_executions_without_pages_gives_no_rows_and_no_error(tmp_path: Path) -> None:
    """A lane may get a batch of only such executions (its partition sorts last); DuckDB cannot read no files."""
    from pipeline.transform import Fetch, Transformer

    empty = Fetch(instance_id=IID, execution_id=7, run_id="r", folder=tmp_path, pages=(), execution=EXECUTION)
    written: list[int] = []
    with Transformer(threads=1) as transformer:
        stats = transformer.transform([empty], lambda table, rows, partition=None: written.append(rows.num_rows))
    assert (stats.tasks, stats.artifacts, stats.tags, stats.rejects, sum(written)) == (0, 0, 0, {}, 0)


def test_a_transformer_told_to_stop_between_two_statements_runs_no_more(tmp_path: Path) -> None:
    """DuckDB forgets an interrupt that lands between statements; the transformer does not."""
    from pipeline.transform import Stopped, Transformer, plan

    land(tmp_path, [PAGE_0])
    (fetch,) = plan(Landing(tmp_path))
    written: list[int] = []
    with Transformer(threads=1) as transformer:
        transformer.interrupt()
        with pytest.raises(Stopped):
            transformer.transform([fetch], lambda table, rows, partition=None: written.append(rows.num_rows))
    assert written == []


def test_a_scalar_of_another_type_is_read_as_its_text_whatever_else_the_resource_holds(tmp_path: Path) -> None:
    """The rule does not depend on whether a neighbouring artifact made the resource worth a second look (an
    artifact with ``tags: null`` does); it used to: the same tag was read in one task and rejected in the other."""
    odd = {"type": "IMAGE", "digest": 12345, "tags": [7, "latest", True]}
    alone = resource(42, [odd])
    beside_null_tags = resource(42, [odd, ARTS[1]])
    land(tmp_path, [[task(1, alone, alone), task(2, beside_null_tags, beside_null_tags)]])
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.rejects == {}
    tasks = rows(tmp_path, "tasks", "task_id")
    assert [(r["task_id"], r["src_repository"], r["src_rejected"], r["src_tags"]) for r in tasks] == [
        (1, "42", False, 3),
        (2, "42", False, 3),
    ]
    tags = rows(tmp_path, "tags", "task_id, side, artifact_idx, tag_idx")
    assert [(r["task_id"], r["digest"], r["tag"]) for r in tags if r["side"] == "src"] == [
        (1, "12345", "7"),
        (1, "12345", "latest"),
        (1, "12345", "true"),
        (2, "12345", "7"),
        (2, "12345", "latest"),
        (2, "12345", "true"),
    ]


def test_a_page_of_many_megabytes_loses_nothing(tmp_path: Path) -> None:
    many = [{"type": "IMAGE", "digest": f"sha256:{n:064x}", "tags": [f"t{n}"]} for n in range(2000)]
    big = [task(n, resource("team/huge", many), resource("mirror/huge", many)) for n in range(1, 101)]
    small = [task(101, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))]
    land(tmp_path, [big, small])
    from pipeline.landing import Landing as L

    (manifest,) = L(tmp_path).manifests("tasks")
    assert manifest["pages"][0]["bytes"] > 16 << 20  # over the largest JSON document DuckDB's reader takes
    summary = load_lake(tmp_path, version="20261101T000001000Z-bbbbbb")
    assert summary.stats.tasks == 101
    assert summary.stats.tags == 100 * 2 * 2000 + 2 * 2
    assert rows(tmp_path, "rejects", "field") == []


def test_run_mode_replaces_an_execution_that_moved_partition_and_catches_up_with_landed_fetches(
    tmp_path: Path,
) -> None:
    first, second, third = "20261101T000000000Z-aaaaaa", "20261102T000000000Z-bbbbbb", "20261103T000000000Z-cccccc"
    one = [task(1, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))]
    # 1. created_at unknown: the execution's rows live in partition "unknown"
    land(tmp_path, [one], {**EXECUTION, "created_at": None}, run_id=first)
    load_lake(tmp_path, version="20261101T000001000Z-vvvvv1")
    assert [r["execution_month"] for r in rows(tmp_path, "tasks", "task_id")] == ["unknown"]
    # 2. fetched again, now with its created_at: it moves to 2026-10, and leaves nothing behind
    land(tmp_path, [one], EXECUTION, run_id=second)
    load_lake(tmp_path, version="20261102T000001000Z-vvvvv2", only=[(IID, 7)])
    got = rows(tmp_path, "tasks", "task_id")
    assert [(r["task_id"], r["execution_month"], r["run_id"]) for r in got] == [(1, "2026-10", second)]
    assert len(rows(tmp_path, "tags", "task_id")) == 4
    # 3. a run landed a newer fetch and was killed before loading it; the next run loads nothing of its own
    two = [*one, task(2, resource("a/b", ARTS[:1]), resource("c/b", ARTS[:1]))]
    land(tmp_path, [two], EXECUTION, run_id=third)
    summary = load_lake(tmp_path, version="20261103T000001000Z-vvvvv3", only=[])
    assert summary.executions_loaded == 1  # caught up with the landing, no manual step
    assert [(r["task_id"], r["run_id"]) for r in rows(tmp_path, "tasks", "task_id")] == [(1, third), (2, third)]
    assert [r["tasks_run"] for r in rows(tmp_path, "executions", "execution_id")] == [third]


def test_what_arrow_finds_missing_in_a_resource_is_exactly_what_duckdb_finds_suspicious(tmp_path: Path) -> None:
    """DuckDB decides which resources keep their text for judging (``*_look``); numpy, from the flat arrays,
    what each lacks (``resource_facts``). A resource the one flags and the other does not would be judged
    without its text, or never judged: both must agree on every resource."""
    import numpy as np

    from pipeline.transform import Transformer, plan

    odd = [
        resource("a/b", [None]),
        resource("a/b", [{"type": "IMAGE", "tags": ["1"]}]),
        resource("a/b", [{"type": "IMAGE", "digest": D1}]),
        resource("a/b", [{"type": "IMAGE", "digest": D1, "tags": ["1", None]}]),
        resource("a/b", [{"type": "IMAGE", "digest": None, "tags": []}]),
        resource("a/b", None),
        resource("a/b", {"x": 1}),
        resource(None, ARTS),  # type: ignore[arg-type]
        {"type": "artifact", "metadata": {"artifacts": ARTS}},
        {"type": "artifact"},
        [1, 2],
    ]
    tasks = [task(n + 1, side, odd[-1 - n]) for n, side in enumerate(odd)]
    tasks += [task(100, resource("a/b", ARTS[:1]), resource("c/d", [])), task(101, "", None), task(102, "{oops", "7")]
    land(tmp_path, [tasks])
    fetches = plan(Landing(tmp_path))
    with Transformer(threads=1) as transformer:
        typed, _ = transformer._read(fetches, transformer._register_files(fetches))
    for side in ("src", "dst"):
        look = np.asarray(typed.column(f"{side}_look").to_pylist())
        lacks = np.zeros(typed.num_rows, dtype=bool)
        for name in ("unparsed", "no_name", "no_artifacts", "bad_artifact", "null_tags", "null_tag"):
            lacks |= np.asarray(typed.column(f"{side}_{name}").to_pylist())
        assert look.tolist() == lacks.tolist(), side
        assert 0 < look.sum() < len(look)


def test_batches_are_bounded_by_their_page_bytes_as_well_as_their_tasks(tmp_path: Path) -> None:
    """The batch is held as one Arrow table: large resources make smaller batches, and an execution whose
    pages alone exceed the bound is cut into parts, each a batch alone."""
    from pipeline.transform import Fetch, batches

    def fetch(execution_id: int, pages: int, page_bytes: int) -> Fetch:
        return Fetch(
            instance_id=IID,
            execution_id=execution_id,
            run_id="r",
            folder=tmp_path,
            pages=tuple((100 * n, f"page-{n}", 100, 0, page_bytes) for n in range(pages)),
            execution=EXECUTION,
        )

    small = [fetch(n, 2, 1_000) for n in range(1, 4)]
    assert [[f.execution_id for f in b] for b in batches(small, 1_000, 10_000)] == [[1, 2, 3]]
    assert [[f.execution_id for f in b] for b in batches(small, 1_000, 4_000)] == [[1, 2], [3]]
    large = fetch(9, 5, 3_000)
    cut = list(batches([large], 1_000, 7_000))
    assert [[len(f.pages) for f in b] for b in cut] == [[2], [2], [1]]
    assert all(b[0].all_pages == large.pages for b in cut)
