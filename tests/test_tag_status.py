"""tag_status and tag_attempts: where each tag stands, counting retries, on a world built by hand.

Policy 1 (scheduled, enabled) copies team/app; times relative to now:
- execution 10 (30 h ago, Failed): task 100 listed tags 1.0 and 2.0; its subtasks say 1.0 Succeed and 2.0
  Failed (401); task 101: tag 3.0 Failed (not found); task 102: tag 5.0 Failed (timeout).
- execution 11 (2 h ago, Succeed... with failures): task 110 replicated 2.0; task 111: 3.0 Failed again
  (timeout); task 112 Succeed for 4.0, yet its destination resource does not list 4.0.
- execution 12 (1 h ago, manual): task 120 replicated 5.0 by hand.
- execution 13 (running): task 130 is still copying 6.0.
Expected: 1.0 and 2.0 replicated (2.0 after a failed attempt), 3.0 failed twice since never succeeding,
4.0 missing, 5.0 replicated by hand, 6.0 running; the alert counts 3.0 and 4.0 only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from conftest import run_cli, sandbox_env
from test_alerts import NOW, ago, policy, run
from test_transform_golden import D1, D2, D3, IID, resource
from test_views import build, select, t

from pipeline.landing import FetchWriter, Landing
from pipeline.sandbox import SandboxConfig, SandboxServer
from pipeline.sandbox.faults import Faults
from pipeline.transform.subtasks import KIND, subtask_folder

TASK_RUN = "20261101T000000000Z-aaaaaa"  # the run test_transform_golden.land lands tasks under
D4, D5, D6 = ("sha256:" + c * 64 for c in "def")
TEXT = {
    "auth": "http status code: 401, body: unauthorized to access repository: team/app",
    "not_found": "manifest unknown: manifest unknown",
    "network": 'Get "https://mirror.example.com/v2/":\ndial tcp 10.0.0.7:443: i/o timeout',  # two lines
}


def art(digest: str, tag: str) -> dict[str, Any]:
    return {"type": "IMAGE", "digest": digest, "labels": None, "tags": [tag]}


def copy(
    task_id: int, eid: int, status: str, hours: float, listed: list[tuple[str, str]], reached: bool = True
) -> dict[str, Any]:
    arts = [art(d, tag) for d, tag in listed]
    dst = resource("mirror/app", arts if reached else [])
    return t(task_id, eid, status, start=ago(hours), src=resource("team/app", arts), dst=dst)


def sub(sid: int, tag: str, digest: str, status: str, hours: float, text: str = "") -> dict[str, Any]:
    """A subtask as the API sends it (SubtaskDetail), ending 36 seconds after it started."""
    where = {"namespace": "team", "repository": "app", "tag": tag, "digest": digest}
    times = {"start_time": ago(hours), "end_time": ago(hours - 0.01)}
    return {"id": sid, "job_id": f"job-{sid}", **where, "status": status, "status_text": text, **times}


def land_subtasks(data_dir: Path, eid: int, task_id: int, subtasks: list[dict[str, Any]]) -> None:
    """Land one task's subtasks as extract does: one fetch per task, under the run of its task fetch."""
    base = subtask_folder(Landing(data_dir).root, IID, eid, TASK_RUN)
    keys = {"kind": KIND, "run_id": TASK_RUN, "instance_id": IID, "execution_id": eid, "task_id": task_id}
    writer = FetchWriter(base / f"task_id={task_id}", keys)
    body = json.dumps({"sub_tasks": subtasks, "total": len(subtasks)}).encode()
    common = {"path": "/p", "params": {}, "limit": 100, "status": 200, "request_id": None, "fetched_at": "t"}
    writer.add(writer.write_page(body=body, offset=0, rows=len(subtasks), total=len(subtasks), **common))
    writer.complete(subtasks=len(subtasks))


WORLD = [
    (
        run(10, 1, "Failed", 30),
        [
            copy(100, 10, "Failed", 30, [(D1, "1.0"), (D2, "2.0")]),
            copy(101, 10, "Failed", 30, [(D3, "3.0")]),
            copy(102, 10, "Failed", 30, [(D5, "5.0")]),
        ],
    ),
    (
        run(11, 1, "Failed", 2),
        [
            copy(110, 11, "Succeed", 2, [(D2, "2.0")]),
            copy(111, 11, "Failed", 2, [(D3, "3.0")]),
            copy(112, 11, "Succeed", 2, [(D4, "4.0")], reached=False),
        ],
    ),
    (run(12, 1, "Succeed", 1, trigger="manual"), [copy(120, 12, "Succeed", 1, [(D5, "5.0")])]),
    (run(13, 1, "InProgress", 0.5), [copy(130, 13, "InProgress", 0.5, [(D6, "6.0")])]),
]
SUBTASKS = {
    (10, 100): [sub(1, "1.0", D1, "Succeed", 30), sub(2, "2.0", D2, "Failed", 29.9, TEXT["auth"])],
    (10, 101): [sub(3, "3.0", D3, "Failed", 30, TEXT["not_found"])],
    (10, 102): [sub(4, "5.0", D5, "Failed", 30, TEXT["network"])],
    (11, 111): [sub(5, "3.0", D3, "Failed", 2, TEXT["network"])],
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    data_dir = tmp_path_factory.mktemp("tags")
    for (eid, task_id), subtasks in SUBTASKS.items():
        land_subtasks(data_dir, eid, task_id, subtasks)
    with build(data_dir, WORLD, policies=[policy(1, "mirror-app")]) as connection:
        yield connection


def test_each_tag_stands_where_its_newest_attempt_left_it(db: duckdb.DuckDBPyConnection) -> None:
    rows = {r["tag"]: r for r in select(db, "SELECT * FROM tag_status")}
    assert {tag: r["state"] for tag, r in rows.items()} == {
        "1.0": "replicated",
        "2.0": "replicated",
        "3.0": "failed",
        "4.0": "missing",
        "5.0": "replicated",
        "6.0": "running",
    }
    assert {r["src_repository"] for r in rows.values()} == {"team/app"}
    assert {r["policy_name"] for r in rows.values()} == {"mirror-app"}
    # 2.0: failed (401) in execution 10, replicated by execution 11: fine, and the failure is remembered
    two = rows["2.0"]
    assert (two["execution_id"], two["task_id"], two["attempts"], two["failed_attempts_since_success"]) == (
        11,
        110,
        2,
        0,
    )
    assert two["last_failure_text"] == TEXT["auth"]
    assert abs((NOW - two["last_success_at"]).total_seconds() - 2 * 3600) < 120
    assert not two["per_tag"]  # a Succeed task: its tags succeeded with it, no subtask fetched
    # 1.0: its task failed, but its own subtask succeeded
    assert (rows["1.0"]["status"], rows["1.0"]["per_tag"], rows["1.0"]["attempts"]) == ("Succeed", True, 1)
    # 3.0: never replicated, two failures, the newest text wins
    three = rows["3.0"]
    assert three["last_success_at"] is None
    assert (three["failed_attempts_since_success"], three["attempts"]) == (2, 2)
    assert three["last_failure_text"] == TEXT["network"]
    assert (three["execution_id"], three["task_id"], three["digest"]) == (11, 111, D3)
    # 4.0: Succeed, but the destination does not list it
    assert (rows["4.0"]["status"], rows["4.0"]["failed_attempts_since_success"]) == ("Succeed", 0)
    # 5.0: failed, then replicated by a manual run
    assert (rows["5.0"]["execution_id"], rows["5.0"]["failed_attempts_since_success"]) == (12, 0)
    assert rows["6.0"]["last_success_at"] is None and rows["6.0"]["status"] == "InProgress"


def test_attempts_take_the_subtask_status_over_the_task_status(db: duckdb.DuckDBPyConnection) -> None:
    found = select(
        db,
        "SELECT execution_id, task_id, tag, status, per_tag, finished, on_destination, trigger FROM tag_attempts "
        "ORDER BY execution_id, task_id, tag",
    )
    assert [(r["execution_id"], r["task_id"], r["tag"], r["status"], r["per_tag"]) for r in found] == [
        (10, 100, "1.0", "Succeed", True),
        (10, 100, "2.0", "Failed", True),
        (10, 101, "3.0", "Failed", True),
        (10, 102, "5.0", "Failed", True),
        (11, 110, "2.0", "Succeed", False),
        (11, 111, "3.0", "Failed", True),
        (11, 112, "4.0", "Succeed", False),
        (12, 120, "5.0", "Succeed", False),
        (13, 130, "6.0", "InProgress", False),
    ]
    assert [r["finished"] for r in found] == [True] * 8 + [False]
    assert [r["on_destination"] for r in found if r["task_id"] == 112] == [False]
    assert {r["trigger"] for r in found if r["execution_id"] == 12} == {"manual"}


def test_the_missing_tags_alert_counts_tags_whose_newest_finished_attempt_failed_or_did_not_arrive(
    db: duckdb.DuckDBPyConnection,
) -> None:
    (alert,) = select(db, "SELECT value, detail FROM alerts WHERE kind = 'missing_tags'")
    assert alert["value"] == 2  # 3.0 (failed) and 4.0 (missing); not 2.0 nor 5.0 (retried), nor 6.0 (running)
    assert alert["detail"] == f"2 tags not on the destination (threshold 0), e.g. team/app:3.0: {TEXT['network']}"
    assert [r["kind"] for r in select(db, "SELECT kind FROM alerts_over(max_missing_tags := 2)")] == [
        "failing",
        "stale",
    ]


def test_every_tag_the_sandbox_retried_is_replicated_with_its_failure_counted(tmp_path: Path) -> None:
    """Against the sandbox's own record: a tag Failed in one execution and Succeed in a later one of the same
    policy (same digest, nothing newer) is 'replicated', its failure before the success is remembered."""
    config = SandboxConfig(seed=0, scale=0.5, faults=Faults(rate_retried_tags=0.05))
    with SandboxServer(config) as server:
        result = run_cli(["run", "--subtasks", "all"], sandbox_env(server, tmp_path))
        assert result.returncode == 0, result.stderr
        truth = requests.get(f"{server.url}/_sandbox/subtask-truth", timeout=60).json()["retries"]
    exact = [r for r in truth if r["same_digest"]]
    assert len(exact) >= 3
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        for retry in exact:
            key = [retry["instance_id"], retry["policy_id"], retry["repository"], retry["tag"]]
            attempts = db.execute(
                "SELECT execution_id, task_id, status FROM tag_attempts "
                "WHERE instance_id = ? AND policy_id = ? AND src_repository = ? AND tag = ?",
                key,
            ).fetchall()
            failed, succeeded = retry["failed"], retry["succeeded"]
            assert (failed["execution_id"], failed["task_id"], "Failed") in attempts
            assert (succeeded["execution_id"], succeeded["task_id"], "Succeed") in attempts
            (row,) = db.execute(
                "SELECT state, last_success_at IS NOT NULL, last_failure_text IS NOT NULL FROM tag_status "
                "WHERE instance_id = ? AND policy_id = ? AND src_repository = ? AND tag = ?",
                key,
            ).fetchall()
            later = [a for a in attempts if a[0] > succeeded["execution_id"]]
            if not later:  # nothing after the retry: it decides
                assert row == ("replicated", True, True), retry


def test_failure_texts_are_classed_whatever_their_lines(db: duckdb.DuckDBPyConnection) -> None:
    found = dict(db.sql("SELECT reason, sum(failed_tags)::INTEGER FROM failure_reasons GROUP BY ALL").fetchall())
    assert found == {"auth": 1, "not_found": 1, "network": 2}


def test_a_failed_task_without_subtasks_counts_its_tags_missing_only_when_the_destination_lacks_them(
    tmp_path: Path,
) -> None:
    """With --subtasks none (or a 404 for the listing) a failed task says nothing of which of its tags failed:
    a tag its destination resource lists is not counted missing, one it does not list is."""
    world = [
        (
            run(30, 1, "Failed", 3),
            [
                copy(300, 30, "Failed", 3, [(D1, "1.0"), (D2, "2.0")]),  # listed on the destination: unknown
                copy(301, 30, "Failed", 3, [(D3, "3.0")], reached=False),  # not listed there: missing
            ],
        )
    ]
    with build(tmp_path, world, policies=[policy(1, "mirror-app")]) as db:
        states = dict(db.sql("SELECT tag, state FROM tag_status").fetchall())
        assert states == {"1.0": "failed", "2.0": "failed", "3.0": "failed"}
        (alert,) = select(db, "SELECT value, detail FROM alerts WHERE kind = 'missing_tags'")
    assert alert["value"] == 1 and alert["detail"].endswith("e.g. team/app:3.0")
