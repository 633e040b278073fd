"""Ids and numbers no lake can hold as sent: each is stored faithfully or rejected with a reason, and the rest
of the run, and every later command, goes on. End to end: the real CLI against a fake API on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from fake_swr import World, env, execution, serve, tasks

from pipeline.landing import Landing, new_run_id

# ids that break hive folders, merge under decoding, or escape a folder when written raw
ODD_IDS = ["a=b", "q?x\nz", "x%2D1", "x-1", "..", "/", "\\", "[*]", "__none__", "sp ace", "Ünï"]
TOO_LONG = "y" * 300


def hostile_world() -> World:
    world = World()
    world.add_instance("good-1", [execution(1), execution(2)])
    for k, iid in enumerate(ODD_IDS):
        world.add_instance(iid, [execution(10 + k)])
        world.tasks[(iid, str(10 + k))] = tasks(10 + k)
    world.add_instance(TOO_LONG, [execution(90)])
    world.tasks[(TOO_LONG, "90")] = tasks(90)
    world.add_instance(
        "numbers",
        [
            execution(2**64),  # no int64 column holds it: the record is rejected whole, its tasks not fetched
            execution(True),  # a boolean is no id
            execution("778"),  # an id sent as its digits: read as 778, like a task id
            execution(779, total=2**64, failed="many"),  # counters out of range or of the wrong type
            [1, 2],  # not an object
        ],
        policies=[
            {"id": 1, "name": "p", "src_registry": {"id": 2**64}, "dest_registry": {"id": 3}, "enabled": "yes"},
            {"id": True, "name": "boolean id"},
            {"id": 2, "name": 42},
        ],
    )
    world.tasks[("numbers", "778")] = tasks(778)
    world.tasks[("numbers", "779")] = tasks(779)
    world.tasks[("good-1", "1")] = tasks(1)
    world.tasks[("good-1", "2")] = tasks(2, n=3)
    return world


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    result = run_cli(["query", sql, "--format", "json", "--data-dir", str(data_dir)], {"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_odd_ids_and_numbers_are_stored_as_sent_or_rejected_and_never_stop_the_rest(tmp_path: Path) -> None:
    world = hostile_world()
    with serve(world) as url:
        first = run_cli(["run"], env(url, tmp_path))
        # only the instance whose id cannot name a folder failed: exit 1, said once, the rest delivered
        assert first.returncode == 1, first.stderr
        (error,) = [line for line in first.stderr.splitlines() if line.startswith("error:")]
        assert error.startswith("error: 1 instances could not be listed; first: id 'yyyyy")
        assert "too long to name a folder" in error
        assert not any(path.startswith(f"/v2/p/instances/{TOO_LONG}/") for path in world.requests)

        per_instance = query(tmp_path, "SELECT instance_id, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL")
        expected = {"good-1": 5, "numbers": 4, **{iid: 2 for iid in ODD_IDS}}
        assert {r["instance_id"]: r["n"] for r in per_instance} == expected  # exact ids, none merged
        distinct = "SELECT count(*) AS n FROM (SELECT DISTINCT instance_id, execution_id, task_id FROM tasks)"
        assert query(tmp_path, distinct) == [{"n": sum(expected.values())}]  # no key merged or repeated
        numbers = "SELECT execution_id, total, failed FROM executions WHERE instance_id = 'numbers' ORDER BY 1"
        assert query(tmp_path, numbers) == [
            {"execution_id": 778, "total": 2, "failed": 0},
            {"execution_id": 779, "total": None, "failed": None},
        ]
        rejects = query(
            tmp_path,
            "SELECT field, error, raw, execution_id FROM rejects WHERE execution_month = 'listings' ORDER BY ALL",
        )
        got = {(r["field"], r["error"], r["execution_id"]) for r in rejects}
        assert got == {
            ("execution.id", "expected an integer, got true", None),
            ("execution.id", "integer 18446744073709551616 is out of the 64-bit range", None),
            ("execution.id", "not an object", None),
            ("execution.total", "integer 18446744073709551616 is out of the 64-bit range", 779),
            ("execution.failed", 'expected an integer, got text "many"', 779),
            ("policy.id", "expected an integer, got true", None),
            ("policy.src_registry.id", "integer 18446744073709551616 is out of the 64-bit range", None),
            ("policy.enabled", 'expected true or false, got text "yes"', None),
            ("policy.name", "expected text, got a number 42", None),
        }
        raws = [json.loads(r["raw"]) for r in rejects if r["field"] == "execution.total"]
        assert raws == [execution(779, total=2**64, failed="many")]  # the record as sent, big integer and all

        # nothing the landing holds makes a later command fail
        again = run_cli(["run"], env(url, tmp_path))
        assert again.returncode == 1 and "1 instances could not be listed" in again.stderr
    rebuilt = run_cli(["rebuild", "--data-dir", str(tmp_path)], {"PATH": os.environ["PATH"]})
    assert rebuilt.returncode == 0, rebuilt.stderr
    counted = query(tmp_path, "SELECT instance_id, count(*) AS n FROM tasks GROUP BY ALL")
    assert {r["instance_id"]: r["n"] for r in counted} == expected
    report = run_cli(["report", "--data-dir", str(tmp_path)], {"PATH": os.environ["PATH"]})
    assert report.returncode == 0, report.stderr


def test_a_lake_an_older_version_wrote_with_raw_ids_is_named_then_repaired_by_the_next_run(tmp_path: Path) -> None:
    world = World()
    world.add_instance("a=b", [execution(1)])
    world.add_instance("ok", [execution(2)])
    world.tasks[("a=b", "1")] = tasks(1)
    world.tasks[("ok", "2")] = tasks(2)
    with serve(world) as url:
        assert run_cli(["run"], env(url, tmp_path)).returncode == 0
        lake = tmp_path / "lake"
        for folder in sorted(lake.glob("*/instance_id=a%3Db")):  # as versions before the encoding named them
            folder.rename(folder.with_name("instance_id=a=b"))
        (tmp_path / "warehouse.duckdb").unlink()
        reader = {"PATH": os.environ["PATH"]}
        broken = run_cli(["query", "SELECT count(*) FROM tasks", "--data-dir", str(tmp_path)], reader)
        assert broken.returncode == 1
        (line,) = broken.stderr.strip().splitlines()
        assert "partition folders named by an older version" in line
        assert "tasks/instance_id=a=b" in line and "swr-etl rebuild --instance-id 'a=b'" in line
        assert run_cli(["run"], env(url, tmp_path)).returncode == 0  # owns a=b: renames its folders
    assert not list(lake.glob("*/instance_id=a=b"))
    rows = query(tmp_path, "SELECT instance_id, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL")
    assert rows == [{"instance_id": "a=b", "n": 2}, {"instance_id": "ok", "n": 2}]
    assert pq.read_table(lake / "executions" / "instance_id=a%3Db" / "part-0.parquet").num_rows == 1


@pytest.mark.parametrize("name", ["with[bracket]", "with*star"])
def test_a_data_directory_with_glob_characters_in_its_path_works(tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / name
    world = World()
    world.add_instance("i-1", [execution(1)])
    world.tasks[("i-1", "1")] = tasks(1)
    with serve(world) as url:
        result = run_cli(["run"], env(url, data_dir))
    assert result.returncode == 0, result.stderr
    assert query(data_dir, "SELECT count(*) AS n FROM tasks") == [{"n": 2}]


def test_a_data_directory_duckdb_cannot_hold_a_database_in_is_refused_before_any_request(tmp_path: Path) -> None:
    world = World()
    with serve(world) as url:
        result = run_cli(["run"], env(url, tmp_path / "with?question"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "has a '?' in its path, where DuckDB cannot keep its warehouse: choose a folder without one" in line
    assert world.requests == []


def test_tasks_an_older_version_landed_under_ids_no_column_holds_do_not_stop_later_loads(tmp_path: Path) -> None:
    world = World()
    world.add_instance("i-1", [execution(1)])
    world.tasks[("i-1", "1")] = tasks(1)
    with serve(world) as url:
        assert run_cli(["run"], env(url, tmp_path)).returncode == 0
        landing = Landing(tmp_path)
        for bad in (2**64, True):  # older versions fetched the tasks of any execution id the listing sent
            writer = landing.fetch("tasks", new_run_id(), instance_id="i-1", execution_id=bad)
            body = json.dumps({"tasks": tasks(5), "total": 2}).encode()
            writer.add(
                writer.write_page(
                    body=body, path="/v2/p/x", params={}, offset=0, limit=100, status=200, request_id=None,
                    fetched_at="2026-11-02T00:00:00Z", rows=2, total=2,
                )
            )  # fmt: skip
            writer.complete(execution=execution(bad), tasks=2, missing=0)
        again = run_cli(["run"], env(url, tmp_path))
        assert again.returncode == 0, again.stderr
    assert run_cli(["rebuild", "--data-dir", str(tmp_path)], {"PATH": os.environ["PATH"]}).returncode == 0
    assert query(tmp_path, "SELECT execution_id, count(*) AS n FROM tasks GROUP BY ALL") == [
        {"execution_id": 1, "n": 2}
    ]
