"""The real ``swr-etl run`` against a task API that lies: totals far too large or too small, pages that repeat,
a list that never ends, items that are not tasks. Each test starts its own server on loopback; what the
honest executions of the same run deliver is checked exactly, and so is what the others are said to miss."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import clean_env, run_cli

from pipeline.landing import Landing

IID = "i-1"
CONCURRENCY = 4
PageFn = Callable[[int], tuple[list[Any], int]]  # offset -> (the page's tasks, the total it reports)


def task(task_id: int, execution_id: int) -> dict[str, Any]:
    """A task the transform loads whole: one artifact copied from team/app to mirror/app."""
    artifact = {"type": "IMAGE", "digest": "sha256:" + "a" * 64, "labels": None, "tags": ["1.0"]}

    def resource(repo: str) -> str:
        metadata = {"repository": {"name": repo, "metadata": {"public": "true"}}, "artifacts": [artifact]}
        return json.dumps({"type": "artifact", "metadata": metadata, "registry": None, "deleted": False,
                           "is_delete_tag": False, "override": True})  # fmt: skip

    return {
        "id": task_id,
        "execution_id": execution_id,
        "resource_type": "artifact",
        "src_resource": resource("team/app"),
        "dst_resource": resource("mirror/app"),
        "operation": "copy",
        "job_id": f"job-{task_id}",
        "status": "Succeed",
        "StatusRevision": 1,
        "start_time": "2026-11-01T08:00:00Z",
        "end_time": "2026-11-01T08:00:10Z",
    }


def tasks(execution_id: int, n: int) -> list[dict[str, Any]]:
    return [task(execution_id * 100_000 + k, execution_id) for k in range(n)]


def record(execution_id: int, total: int | None) -> dict[str, Any]:
    """An execution as the executions listing shows it; ``total`` None: the record carries no count."""
    body = {"id": execution_id, "policy_id": 1, "status": "Succeed", "created_at": "2026-11-01T00:00:00Z"}
    return body if total is None else {**body, "total": total}


class HostileApi:
    """One instance, one policy, and executions whose task pages come from a function of the offset. Counts
    the task requests of each execution by offset."""

    def __init__(self, executions: dict[int, tuple[dict[str, Any], PageFn]]) -> None:
        self.executions = executions
        self.asked: Counter[tuple[int, int]] = Counter()
        self._lock = threading.Lock()

    def offsets(self, execution_id: int) -> list[int]:
        """The offsets asked for, each as often as it was asked, in order."""
        with self._lock:
            return sorted(o for (e, o), n in self.asked.items() if e == execution_id for _ in range(n))

    def reset(self) -> None:
        with self._lock:
            self.asked.clear()

    def answer(self, path: str, offset: int) -> dict[str, Any]:
        parts = path.strip("/").split("/")  # v2 / p / instances / i-1 / replication / executions / E / tasks
        if parts[2:] == ["instances"]:
            return {"instances": [{"id": IID, "name": "one", "status": "Running"}], "total": 1}
        if parts[-1] == "policies":
            return {"policies": [{"id": 1, "name": "mirror"}], "total": 1}
        if parts[-1] == "registries":
            return {"registries": [], "total": 0}
        if parts[-1] == "executions":
            records = [rec for rec, _ in self.executions.values()]
            return {"executions": records[offset : offset + 100], "total": len(records)}
        execution_id = int(parts[-2])
        with self._lock:
            self.asked[(execution_id, offset)] += 1
        rows, total = self.executions[execution_id][1](offset)
        return {"tasks": rows, "total": total}

    @contextmanager
    def serve(self, data_dir: Path) -> Iterator[dict[str, str]]:
        """Listen on loopback while the block runs; yields the environment the CLI needs to reach it."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                offset = int(parse_qs(url.query).get("offset", ["0"])[0])
                raw = json.dumps(api.answer(url.path, offset)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("X-Request-Id", "req-hostile")
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            yield clean_env(
                SWR_ENDPOINT=f"http://127.0.0.1:{httpd.server_address[1]}",
                SWR_PROJECT_ID="p",
                SWR_AUTH_TOKEN="tok-hostile",
                SWR_ETL_DATA_DIR=str(data_dir),
                SWR_ETL_CONCURRENCY=str(CONCURRENCY),
            )
        finally:
            httpd.shutdown()
            httpd.server_close()


def run(env: dict[str, str]) -> Any:
    # the timeout only ends a run that would otherwise page a lying total for an hour
    result = run_cli(["run"], env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def query(env: dict[str, str], sql: str) -> list[dict[str, Any]]:
    result = run_cli(["query", sql, "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def newest_manifests(data_dir: Path) -> dict[int, dict[str, Any]]:
    newest: dict[int, dict[str, Any]] = {}
    for manifest in Landing(data_dir).manifests("tasks"):
        newest[manifest["execution_id"]] = manifest  # oldest first: the last one is the newest
    return newest


def extract_summary(data_dir: Path) -> dict[str, Any]:
    runs = [json.loads(p.read_text()) for p in sorted((data_dir / "raw" / "runs").glob("*.json"))]
    summary: dict[str, Any] = [r for r in runs if r.get("stage") == "extract"][-1]
    return summary


LIAR, SHORT, NORMAL, LOW, ENDLESS = 1, 2, 3, 4, 5


def hostile_world() -> HostileApi:
    repeated = tasks(LIAR, 100)
    short = tasks(SHORT, 250)
    normal = tasks(NORMAL, 150)
    low = tasks(LOW, 250)
    return HostileApi(
        {
            # every page says 10^7 and holds the same 100 tasks; the execution record says 250
            LIAR: (record(LIAR, 250), lambda offset: (repeated, 10**7)),
            # the pages say 100 and hold only the first 100 of 250; the record says 250
            SHORT: (record(SHORT, 250), lambda offset: (short[offset : offset + 100] if offset < 100 else [], 100)),
            NORMAL: (record(NORMAL, 150), lambda offset: (normal[offset : offset + 100], 150)),
            # the pages say 150 but hold 250 (the page at offset 100 is full); the record has no count
            LOW: (record(LOW, None), lambda offset: (low[offset : offset + 100], 150)),
            # the pages say 150, and every offset holds 100 new tasks: the list never ends
            ENDLESS: (
                record(ENDLESS, None),
                lambda offset: ([task(ENDLESS * 100_000 + offset + k, ENDLESS) for k in range(100)], 150),
            ),
        }
    )


def test_lying_totals_cost_few_requests_are_reported_missing_and_fetched_again(tmp_path: Path) -> None:
    api = hostile_world()
    with api.serve(tmp_path) as env:
        first = run(env)
        manifests = newest_manifests(tmp_path)
        asked = {eid: api.offsets(eid) for eid in (LIAR, SHORT, NORMAL, LOW, ENDLESS)}
        api.reset()
        second = run(env)
        asked_again = {eid: api.offsets(eid) for eid in (LIAR, SHORT, NORMAL, LOW, ENDLESS)}
        loaded = query(env, "SELECT execution_id, count(*) AS n, count(DISTINCT task_id) AS ids FROM tasks GROUP BY 1")
        normal_ids = query(env, f"SELECT task_id FROM tasks WHERE execution_id = {NORMAL} ORDER BY task_id")

    # the liar: a page that repeats the first ends paging, at most one request a slot after the first
    assert len(asked[LIAR]) <= CONCURRENCY + 1, asked[LIAR]
    assert 0 in asked[LIAR]
    # the short one: up to the record's count, at once; the pages past the pages' total come back empty
    assert asked[SHORT] == [0, 100, 200]
    assert asked[NORMAL] == [0, 100]  # an honest execution costs what it always did
    assert asked[LOW] == [0, 100, 200]  # the full page at 100 runs past the total of 150: 200 is asked too
    assert asked[ENDLESS] == list(range(0, 1200, 100))  # 10 pages past the total, then no more

    verdict = {eid: (m["tasks"], m["missing"], m["passes"]) for eid, m in manifests.items()}
    assert verdict == {
        LIAR: (100, 150, 1),  # the pages' 10^7 is disproved by the pages themselves: the record's 250 counts
        SHORT: (100, 150, 1),  # the record's 250 outranks the pages' 100
        NORMAL: (150, 0, 1),
        LOW: (250, 0, 1),  # more than the pages' total, and nothing says more exist
        ENDLESS: (1200, 0, 1),  # how many are missing cannot be told, but the list was not read to its end
    }
    assert re.fullmatch(
        r"paging stopped: the full page at offset [0-9]+ holds no task not seen before: the server repeats "
        r"itself; 100 distinct tasks seen of 250 \(the pages' total 10000000, the execution record's 250\)",
        manifests[LIAR]["incomplete"],
    )
    assert manifests[SHORT]["incomplete"] == (
        "100 distinct tasks seen of 250 (the pages' total 100, the execution record's 250)"
    )
    assert manifests[ENDLESS]["incomplete"] == (
        "paging stopped: full pages kept coming past offset 1150, beyond the largest total (150) by 1000: "
        "10 pages or 10% of it, the larger"
    )
    assert manifests[NORMAL]["incomplete"] is None
    assert manifests[LOW]["incomplete"] is None

    summary = extract_summary(tmp_path)  # the second run's: the same three are missing the same tasks
    assert summary["missing_tasks"] == 300
    assert summary["executions_incomplete"] == 3
    line = first.stdout.splitlines()[0]
    assert line.startswith(
        "extract: 5 executions in 1 instances (5 complete, 3 of them incomplete: 300 tasks missing), "
    )
    for eid in (LIAR, SHORT, ENDLESS):  # one warning each, with the reason
        (warning,) = [x for x in first.stderr.splitlines() if f"execution {eid} of instance {IID} is incomplete" in x]
        assert manifests[eid]["incomplete"] in warning
        assert "the next run fetches it again" in warning

    # what the honest executions delivered, exactly; the others keep what they had
    assert {r["execution_id"]: (r["n"], r["ids"]) for r in loaded} == {
        LIAR: (100, 100),
        SHORT: (100, 100),
        NORMAL: (150, 150),
        LOW: (250, 250),
        ENDLESS: (1200, 1200),
    }
    assert [r["task_id"] for r in normal_ids] == [NORMAL * 100_000 + k for k in range(150)]

    # the second run fetches again what was incomplete, and nothing that was whole
    assert asked_again[NORMAL] == [] and asked_again[LOW] == []
    assert asked_again[SHORT] == [0, 100, 200]
    assert asked_again[ENDLESS] == list(range(0, 1200, 100))
    assert 1 <= len(asked_again[LIAR]) <= CONCURRENCY + 1
    assert second.stdout.startswith(
        "extract: 5 executions in 1 instances (3 complete, 3 of them incomplete: 300 tasks missing, "
        "2 finished and already landed), "
    )


def test_an_item_that_is_not_a_task_is_rejected_once_however_many_passes_landed_it(tmp_path: Path) -> None:
    # the page holds 98 tasks, a number and a string; the total says 101: three passes land the same page
    items: list[Any] = tasks(7, 98)
    items[5:5] = [7, "x"]
    api = HostileApi({7: (record(7, 101), lambda offset: (items if offset == 0 else [], 101))})
    with api.serve(tmp_path) as env:
        run(env)
        rejects = query(env, "SELECT execution_id, field, error, raw, position, page_offset FROM rejects")
        loaded = query(env, "SELECT count(*) AS n FROM tasks")
    (manifest,) = newest_manifests(tmp_path).values()
    assert manifest["passes"] == 3
    assert sorted(page["file"] for page in manifest["pages"] if page["offset"] == 0) == [
        "page-000000000.json.zst",
        "page-000000000.p1.json.zst",
        "page-000000000.p2.json.zst",
    ]
    assert sorted(rejects, key=lambda r: r["position"]) == [
        {"execution_id": 7, "field": "task", "error": "task is not an object", "raw": "7", "position": 5,
         "page_offset": 0},
        {"execution_id": 7, "field": "task", "error": "task is not an object", "raw": '"x"', "position": 6,
         "page_offset": 0},
    ]  # fmt: skip
    assert loaded == [{"n": 98}]
