"""Per-tag subtasks through the real CLI against the sandbox: which tasks' subtasks are fetched (--subtasks),
that the table's counts equal the sandbox's truth, incremental runs and a rebuild from the landing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from conftest import run_cli, sandbox_env

from pipeline.extraction.incremental import FINISHED
from pipeline.sandbox import SandboxConfig, SandboxServer
from pipeline.schema import SUBTASKS

CONFIG = SandboxConfig(seed=11, scale=0.1)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(CONFIG) as srv:
        yield srv


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        return db.sql(sql).fetchall()


def subtask_requests(server: SandboxServer) -> int:
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()
    return int(stats["by_kind"]["subtasks"])


def requests_for(data_dir: Path, where: str) -> int:
    """Subtask pages a fetch of the tasks ``where`` selects asks for: one a task, one more per full page."""
    (n,) = query(
        data_dir,
        "SELECT coalesce(sum(1 + coalesce(s.n, 0) // 100), 0) FROM tasks t "
        "JOIN executions e USING (instance_id, execution_id) "
        "LEFT JOIN (SELECT instance_id, execution_id, task_id, count(*) AS n FROM subtasks GROUP BY ALL) s "
        f"USING (instance_id, execution_id, task_id) WHERE {where}",
    )[0]
    return int(n)


def test_all_subtasks_equal_the_truth_and_a_rebuild_gives_the_same_table(server: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(server, tmp_path)
    result = run_cli(["run", "--subtasks", "all"], env)
    assert result.returncode == 0, result.stderr
    truth = requests.get(f"{server.url}/_sandbox/subtask-truth", timeout=60).json()
    expected = {k: v for k, v in truth["totals"]["by_status"].items() if v}
    assert dict(query(tmp_path, "SELECT status, count(*) FROM subtasks GROUP BY status")) == expected
    per_execution = Counter(  # per execution too
        {
            (i, e, s): n
            for i, e, s, n in query(
                tmp_path, "SELECT instance_id, execution_id, status, count(*) FROM subtasks GROUP BY ALL"
            )
        }
    )
    want = Counter(
        {
            (instance["id"], execution["id"], status): n
            for instance in truth["instances"]
            for execution in instance["executions"]
            for status, n in execution["by_status"].items()
            if n
        }
    )
    assert per_execution == want
    # by hand: a tag on the destination side of its task is Succeed; a Failed one says why and is not there
    on_dst = (
        "EXISTS (SELECT 1 FROM tags g WHERE g.instance_id = s.instance_id AND g.execution_id = s.execution_id "
        "AND g.task_id = s.task_id AND g.side = 'dst' AND g.tag = s.tag AND g.digest = s.digest)"
    )
    rows = query(tmp_path, f"SELECT status, {on_dst}, status_text, start_time FROM subtasks s")
    assert rows and all(status == "Succeed" for status, there, _, _ in rows if there)
    failed = [r for r in rows if r[0] == "Failed"]
    assert failed and not any(there for _, there, _, _ in failed)
    assert any(text for _, _, text, _ in failed) and all(start is not None for *_, start in rows)
    keys = query(
        tmp_path, "SELECT count(*), count(DISTINCT (instance_id, execution_id, task_id, subtask_id)) FROM subtasks"
    )
    assert keys[0][0] == keys[0][1]
    assert query(tmp_path, "SELECT count(*) FROM rejects WHERE field LIKE 'subtask%'") == [(0,)]
    assert subtask_requests(server) == requests_for(tmp_path, "true")
    assert "subtasks" in result.stderr + result.stdout

    columns = ", ".join(c for c in SUBTASKS.columns if c != "run_id")
    before = query(tmp_path, f"SELECT {columns} FROM subtasks ORDER BY ALL")
    result = run_cli(["rebuild"], env)
    assert result.returncode == 0, result.stderr
    assert query(tmp_path, f"SELECT {columns} FROM subtasks ORDER BY ALL") == before


def test_failed_by_default_none_when_asked_and_nothing_again_for_finished_executions(
    server: SandboxServer, tmp_path: Path
) -> None:
    env = sandbox_env(server, tmp_path / "default")
    assert run_cli(["run"], env).returncode == 0
    # only the tasks that ended without succeeding: every one of them asked once (or more, a page each), and no
    # other; not those still running, which have no failure to explain yet
    ended_badly = "t.status NOT IN ('Succeed', 'InProgress', 'Pending', 'Initialized')"
    assert subtask_requests(server) == requests_for(tmp_path / "default", ended_badly) > 0
    assert query(tmp_path / "default", "SELECT count(*) FROM tasks WHERE status = 'InProgress'")[0][0] > 0
    fetched = set(query(tmp_path / "default", "SELECT DISTINCT instance_id, execution_id, task_id FROM subtasks"))
    explained = set(
        query(tmp_path / "default", f"SELECT instance_id, execution_id, task_id FROM tasks t WHERE {ended_badly}")
    )
    assert fetched <= explained
    assert query(tmp_path / "default", "SELECT count(*) FROM subtasks WHERE status = 'Failed'")[0][0] > 0

    # a second run: finished executions are not fetched again, nor their subtasks
    server.reset_stats()
    assert run_cli(["run"], env).returncode == 0
    finished = ", ".join(f"'{s}'" for s in sorted(FINISHED))
    running = f"{ended_badly} AND e.status NOT IN ({finished})"
    assert subtask_requests(server) == requests_for(tmp_path / "default", running)
    assert (
        set(query(tmp_path / "default", "SELECT DISTINCT instance_id, execution_id, task_id FROM subtasks")) == fetched
    )

    server.reset_stats()
    none_dir = tmp_path / "none"
    assert run_cli(["run"], sandbox_env(server, none_dir, SWR_ETL_SUBTASKS="none")).returncode == 0
    assert subtask_requests(server) == 0
    assert query(none_dir, "SELECT count(*) FROM subtasks") == [(0,)]
    assert query(none_dir, "SELECT count(*) FROM tasks")[0][0] > 0


def test_a_bad_subtasks_value_is_a_usage_error(server: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["extract", "--subtasks", "some"], sandbox_env(server, tmp_path))
    assert result.returncode == 2
    assert "--subtasks must be one of failed, all, none, got 'some'" in result.stderr
    result = run_cli(["run"], sandbox_env(server, tmp_path, SWR_ETL_SUBTASKS="every"))
    assert result.returncode == 2
    assert "SWR_ETL_SUBTASKS" in result.stderr
    assert subtask_requests(server) == 0


def test_a_service_without_the_subtasks_listing_warns_and_the_run_succeeds(tmp_path: Path) -> None:
    """The fake API has no subtasks route (404): a failed task's subtasks are said missing, not fatal."""
    import fake_swr

    world = fake_swr.World()
    failed = [{**task, "status": "Failed"} if k == 0 else task for k, task in enumerate(fake_swr.tasks(5))]
    world.add_instance("i-1", [fake_swr.execution(5, status="Failed", failed=1, succeed=1)])
    world.tasks[("i-1", "5")] = failed
    with fake_swr.serve(world) as url:
        result = run_cli(["run"], fake_swr.env(url, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "the subtasks of task 500 of execution 5 are not served (HTTP 404): 0 landed" in result.stderr
    assert [p for p in world.requests if p.endswith("/subtasks")] == [
        "/v2/p/instances/i-1/replication/executions/5/tasks/500/subtasks"
    ]
    assert query(tmp_path, "SELECT count(*) FROM tasks") == [(2,)]
    assert query(tmp_path, "SELECT count(*) FROM subtasks") == [(0,)]
