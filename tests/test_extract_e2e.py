"""The real ``swr-etl extract`` in a subprocess against the sandbox over a loopback socket."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from conftest import all_landed_text, landed_tasks, run_cli, sandbox_env

from pipeline.landing import Landing
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer
from pipeline.sandbox.tasks import REGISTRY_SECRET


def truth_counts(server: SandboxServer) -> dict[tuple[str, int], int]:
    truth = server.truth()
    return {(i["id"], e["id"]): e["tasks"] for i in truth["instances"] for e in i["executions"]}


def assert_everything_landed(server: SandboxServer, data_dir: Path) -> dict[tuple[str, int], list[dict[str, object]]]:
    expected = truth_counts(server)
    landed = landed_tasks(data_dir)
    assert set(landed) == set(expected)
    for key, rows in landed.items():
        ids = [row["id"] for row in rows]
        assert len(set(ids)) == expected[key], key
        assert all(row["execution_id"] == key[1] for row in rows)
    return landed


def test_every_task_of_every_execution_is_landed_and_each_offset_asked_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_cli(["extract", "--concurrency", "6"], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    landed = assert_everything_landed(sandbox, tmp_path)

    sizes = Counter(len(rows) for rows in landed.values())
    for edge in (0, 1, 99, 100, 101, 2345):
        assert sizes[edge] >= 1, f"no execution of {edge} tasks"

    pages = sandbox.stats()["tasks_pages"]
    for (iid, eid), rows in landed.items():
        asked = pages[f"{iid}/{eid}"]
        assert all(n == 1 for n in asked.values()), (eid, asked)
        full, rest = divmod(len(rows), 100)
        assert sorted(int(o) for o in asked) == [100 * k for k in range(max(1, full + (rest > 0)))]

    # the summary line, and the run record beside the pages
    (line,) = result.stdout.strip().splitlines()
    total = sum(len(r) for r in landed.values())
    assert line.startswith(f"extract: {len(landed)} executions in 2 instances ({len(landed)} complete), ")
    assert f" {total} tasks, " in line
    (run_file,) = (tmp_path / "raw" / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    assert run["tasks"] == total
    assert run["executions_failed"] == 0

    # the sandbox sends registry credentials inside some resources: they are masked before landing
    text = all_landed_text(tmp_path)
    assert REGISTRY_SECRET not in text
    assert sandbox.config.token not in text + result.stdout + result.stderr
    assert '\\"access_secret\\":\\"***\\"' in text


def some_execution_ids(server: SandboxServer, n: int) -> list[int]:
    return sorted({eid for _, eid in truth_counts(server)})[:n]


def test_manifests_hold_what_is_needed_to_replay_each_page(sandbox: SandboxServer, tmp_path: Path) -> None:
    first, second = some_execution_ids(sandbox, 2)
    args = ["extract", "--execution-id", str(first), "--execution-id", str(second)]
    result = run_cli(args, sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    manifests = list(Landing(tmp_path).manifests("tasks"))
    assert {m["execution_id"] for m in manifests} == {first, second}
    for manifest in manifests:
        assert manifest["execution"]["id"] == manifest["execution_id"]
        for page in manifest["pages"]:
            assert page["params"] == {"offset": page["offset"], "limit": 100}
            assert page["status"] == 200
            assert page["request_id"]
            assert page["fetched_at"].endswith("Z")
            assert page["path"].endswith(f"/executions/{manifest['execution_id']}/tasks")
            body = Landing.read_page(manifest["folder"], page)  # checks size and sha256
            assert len(json.loads(body)["tasks"]) == page["rows"]
    # nothing half-written is left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_same_result_with_every_fault_knob_on(tmp_path: Path) -> None:
    faults = Faults(
        latency_ms=2,
        rate_429=0.08,
        retry_after_s=0.05,
        rate_5xx=0.08,
        rate_cut=0.05,
        rate_slow=0.03,
        slow_ms=1500,
        rate_bad_resource=0.1,
        rate_object_resource=0.1,
        grow_tasks=37,
    )
    with SandboxServer(SandboxConfig(seed=11, scale=0.5, faults=faults)) as server:
        result = run_cli(
            ["extract", "--concurrency", "8", "--read-timeout", "0.7", "--max-attempts", "8"],
            sandbox_env(server, tmp_path),
        )
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
        stats = server.stats()
    assert REGISTRY_SECRET not in all_landed_text(tmp_path)
    assert all(stats["faults"][kind] > 0 for kind in ("429", "5xx", "cut", "slow")), stats["faults"]
    run = json.loads(next((tmp_path / "raw" / "runs").glob("*.json")).read_text())
    assert run["retries"] >= sum(stats["faults"].values()) - stats["faults"]["slow"]
    assert run["throttled"] == stats["faults"]["429"]


def test_a_bad_token_ends_with_exit_1_and_one_error_line(sandbox: SandboxServer, tmp_path: Path) -> None:
    wrong = "wrong-token-SECRET-7f3a"
    result = run_cli(["extract"], sandbox_env(sandbox, tmp_path, SWR_AUTH_TOKEN=wrong))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "HTTP 401" in errors[0]
    assert "APIGW.0301" in errors[0]
    assert "request id " in errors[0]
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout + all_landed_text(tmp_path)


def test_aksk_signing_works_and_leaks_nothing(tmp_path: Path) -> None:
    ak, sk = "AKSECRET0000000042", "sk-SECRET-never-show-me"
    config = SandboxConfig(seed=5, scale=0.3, ak=ak, sk=sk, token="")
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path, CLOUD_SDK_AK=ak, CLOUD_SDK_SK=sk)
        result = run_cli(["-vv", "extract"], env)
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
    everything = result.stdout + result.stderr + all_landed_text(tmp_path)
    assert sk not in everything
    assert ak not in everything


def test_a_wrong_secret_key_is_refused(tmp_path: Path) -> None:
    config = SandboxConfig(seed=5, scale=0.3, ak="AK0000000000000001", sk="right-sk", token="")
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path, CLOUD_SDK_AK="AK0000000000000001", CLOUD_SDK_SK="wrong-sk-SECRET")
        result = run_cli(["extract"], env)
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "wrong-sk-SECRET" not in result.stderr


def test_iam_password_flow_gets_a_token_and_leaks_nothing(tmp_path: Path) -> None:
    password = "iam-SECRET-pa55word"
    config = SandboxConfig(seed=5, scale=0.3, iam_password=password, token="")
    with SandboxServer(config) as server:
        env = sandbox_env(
            server,
            tmp_path,
            SWR_IAM_USERNAME=config.iam_username,
            SWR_IAM_PASSWORD=password,
            SWR_IAM_DOMAIN=config.iam_domain,
            SWR_IAM_ENDPOINT=server.url,
        )
        result = run_cli(["-vv", "extract"], env)
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
        assert server.stats()["by_kind"]["iam"] == 1  # fetched once, cached for every request
    assert password not in result.stdout + result.stderr + all_landed_text(tmp_path)


def test_an_expired_iam_token_is_refreshed_once(tmp_path: Path) -> None:
    faults = Faults(iam_token_ttl_s=0.3, latency_ms=20)
    config = SandboxConfig(seed=5, scale=0.3, token="", faults=faults)
    with SandboxServer(config) as server:
        env = sandbox_env(
            server,
            tmp_path,
            SWR_IAM_USERNAME=config.iam_username,
            SWR_IAM_PASSWORD=config.iam_password,
            SWR_IAM_DOMAIN=config.iam_domain,
            SWR_IAM_ENDPOINT=server.url,
        )
        result = run_cli(["extract", "--concurrency", "2"], env)
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
        assert server.stats()["by_kind"]["iam"] > 1


def test_json_logs_for_schedulers(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(
        ["--log-format", "json", "-v", "extract", "--execution-id", str(eid)], sandbox_env(sandbox, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    assert logs and all({"ts", "level", "logger", "run_id", "msg"} <= set(entry) for entry in logs)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["stage"] == "extract"
    assert summary["run_id"] == logs[0]["run_id"]
    assert summary["executions_failed"] == 0


def test_an_execution_the_service_forgot_is_a_warning_not_a_failure(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["extract", "--execution-id", "999999"], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "execution 999999 is not listed by any instance in scope" in result.stderr
    assert result.stdout.startswith("extract: 0 executions in 2 instances")


def test_missing_configuration_is_exit_2_with_every_problem(tmp_path: Path) -> None:
    from conftest import clean_env

    result = run_cli(["extract", "--concurrency", "0"], clean_env(SWR_ETL_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no endpoint: give --endpoint or set SWR_ENDPOINT; ")
    assert "no project id" in line
    assert "concurrency must be from 1 to 64, got 0" in line
    assert "no credentials" in line


def test_progress_bars_when_asked_for(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(["--progress", "extract", "--execution-id", str(eid)], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    for bar in ("executions", "tasks", "pages"):
        assert bar in result.stderr
    assert result.stdout.startswith("extract: 1 executions in 2 instances (1 complete)")


def test_no_progress_bars_and_no_chatter_when_not_on_a_terminal(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(["extract", "--execution-id", str(eid)], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # quiet under cron: the summary line on stdout is all
    assert len(result.stdout.splitlines()) == 1
