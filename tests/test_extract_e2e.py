"""The real ``swr-etl extract`` in a subprocess against the sandbox over a loopback socket."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, all_landed_text, clean_env, landed_tasks, run_cli, sandbox_env

from pipeline.landing import Landing, decompress_page
from pipeline.sandbox import Faults, SandboxConfig, SandboxServer
from pipeline.sandbox.tasks import REGISTRY_SECRET


def truth_counts(server: SandboxServer) -> dict[tuple[str, int], int]:
    truth = server.truth()
    return {(i["id"], e["id"]): e["tasks"] for i in truth["instances"] for e in i["executions"]}


def assert_everything_landed(server: SandboxServer, data_dir: Path) -> dict[tuple[str, int], list[dict[str, object]]]:
    """Every task id the sandbox holds was landed for its execution, and nothing else."""
    expected = truth_counts(server)
    landed = landed_tasks(data_dir)
    assert set(landed) == set(expected)
    for key, rows in landed.items():
        want = {t["id"] for t in server.world.tasks(key[0], key[1], 0, expected[key], expected[key])}
        assert {row["id"] for row in rows} == want, key
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
        assert manifest["task_id_repeats"] == 0  # a finished execution's list does not move: no id twice
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
        rate_html=0.05,
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
    assert all(stats["faults"][kind] > 0 for kind in ("429", "5xx", "cut", "slow", "html")), stats["faults"]
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
    # the summary line is printed even when the run stops early
    assert result.stdout.startswith("extract: 0 executions in 0 instances (0 complete)")


def test_aksk_signing_works_and_leaks_nothing(tmp_path: Path) -> None:
    ak, sk = "AKSECRET0000000042", "sk-SECRET-never-show-me"
    config = SandboxConfig(seed=5, scale=0.3, ak=ak, sk=sk, token="")
    with SandboxServer(config) as server:
        env = sandbox_env(server, tmp_path, CLOUD_SDK_AK=ak, CLOUD_SDK_SK=sk)
        result = run_cli(["-vvv", "extract"], env)  # -vvv: urllib3's own debug lines too
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
    assert "Starting new HTTP connection" in result.stderr
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


def test_an_expired_iam_token_is_refreshed_and_the_run_completes(tmp_path: Path) -> None:
    faults = Faults(iam_token_ttl_s=0.3, latency_ms=50)  # the run lasts seconds: tokens expire in it
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
        result = run_cli(["-v", "extract", "--concurrency", "4"], env)
        assert result.returncode == 0, result.stderr
        assert_everything_landed(server, tmp_path)
        iam_calls = server.stats()["by_kind"]["iam"]
    # tokens live 0.3 s: new ones are fetched as they expire (that one expiry costs one IAM call whatever
    # the number of threads refused is shown in test_client)
    assert iam_calls > 1
    assert iam_calls <= 1 + result.stderr.count("IAM token refused")


def test_json_logs_for_schedulers(sandbox: SandboxServer, tmp_path: Path) -> None:
    (eid,) = some_execution_ids(sandbox, 1)
    result = run_cli(
        ["--log-format", "json", "-v", "extract", "--execution-id", str(eid)], sandbox_env(sandbox, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    assert logs and all({"ts", "level", "logger", "stage", "run_id", "msg"} <= set(entry) for entry in logs)
    assert {entry["stage"] for entry in logs} >= {"extract"}
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


def test_an_unstable_task_order_is_paged_again_and_what_is_still_missing_is_reported(tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(seed=4, scale=0.3, faults=Faults(shuffle_tasks=True))) as server:
        result = run_cli(["-v", "extract"], sandbox_env(server, tmp_path))
        assert result.returncode == 0, result.stderr
        expected = truth_counts(server)
    assert "paging it again" in result.stderr
    landed = landed_tasks(tmp_path)
    manifests = {(m["instance_id"], m["execution_id"]): m for m in Landing(tmp_path).manifests("tasks")}
    for key, rows in landed.items():
        unique = len({row["id"] for row in rows})
        manifest = manifests[key]
        assert manifest["tasks"] == unique
        assert manifest["task_id_repeats"] == len(rows) - unique  # what the transform must settle
        assert manifest["missing"] == expected[key] - unique  # what the passes could not see is said, exactly
        assert (manifest["passes"] > 1) == any(".p1." in page["file"] for page in manifest["pages"])
    assert any(m["passes"] > 1 for m in manifests.values())
    run = json.loads(next((tmp_path / "raw" / "runs").glob("*.json")).read_text())
    assert run["missing_tasks"] == sum(expected.values()) - sum(
        len({r["id"] for r in rows}) for rows in landed.values()
    )
    assert run["missing_tasks"] < sum(expected.values()) // 20  # later passes found almost everything


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_at_once_even_while_requests_wait_to_be_retried(tmp_path: Path, signum: int) -> None:
    """SIGTERM (a scheduler's timeout, a pod eviction) is handled as Ctrl-C is."""
    faults = Faults(rate_429=1.0, retry_after_s=100, max_consecutive=50)
    with SandboxServer(SandboxConfig(seed=1, scale=0.2, faults=faults)) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "extract"],
            env=sandbox_env(server, tmp_path),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)  # every request is now waiting 100 s to be retried
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted"


def test_a_listing_without_total_fails_at_once_with_a_clear_error(tmp_path: Path) -> None:
    class NoTotal(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"instances": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    result = run_against(NoTotal, tmp_path, ["extract"])
    assert result.returncode == 1
    assert "expected 'instances' (a list) and 'total' (an integer), got list and NoneType" in result.stderr


def test_a_token_no_header_can_carry_is_a_config_error_that_does_not_echo_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    bad = "sandbox-token\nX-Evil: SECRET-1"
    result = run_cli(["extract"], sandbox_env(sandbox, tmp_path, SWR_AUTH_TOKEN=bad))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == "error: SWR_AUTH_TOKEN holds control or non-Latin-1 characters, which no HTTP header can carry"


def test_a_usage_error_is_one_error_line_and_exit_2(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["extract", "--concurrency", "many"], sandbox_env(sandbox, tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--concurrency': 'many' is not a valid integer")
    assert line.endswith("(see 'swr-etl extract --help')")


def run_against(handler: type[BaseHTTPRequestHandler], data_dir: Path, args: list[str], **extra: str) -> Any:
    """Serve ``handler`` on loopback and run the CLI against it (token ``tok-SECRET-123456``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = clean_env(
        SWR_ENDPOINT=f"http://127.0.0.1:{httpd.server_address[1]}",
        SWR_PROJECT_ID="p",
        SWR_AUTH_TOKEN="tok-SECRET-123456",
        SWR_ETL_DATA_DIR=str(data_dir),
        **extra,
    )
    try:
        return run_cli(args, env)
    finally:
        httpd.shutdown()
        httpd.server_close()


def fake_api(failure: tuple[int, dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    """A small fake API: one instance, two executions; the tasks of execution 2 always answer ``failure``."""

    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            status, body = 200, {"total": 0}
            if path.endswith("/instances"):
                body = {"instances": [{"id": "i-1", "name": "one", "status": "Running"}], "total": 1}
            elif path.endswith("/policies"):
                body = {"policies": [], "total": 0}
            elif path.endswith("/executions"):
                records = [{"id": n, "policy_id": 1, "status": "Succeed", "created_at": "2026-11-01T00:00:00Z"}
                           for n in (1, 2)]  # fmt: skip
                body = {"executions": records, "total": 2}
            elif path.endswith("/executions/2/tasks"):
                status, body = failure
            elif path.endswith("/executions/1/tasks"):
                body = {"tasks": [{"id": 10, "execution_id": 1, "status": "Succeed", "operation": "copy"}], "total": 1}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-Request-Id", "req-fake")
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    return Api


def test_an_execution_that_keeps_failing_fails_the_run_but_the_others_are_loaded(tmp_path: Path) -> None:
    api = fake_api((503, {"error_code": "SWR.0503", "error_msg": "busy"}))
    result = run_against(api, tmp_path, ["run"], SWR_ETL_MAX_ATTEMPTS="2")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("extract: 2 executions in 1 instances (1 complete, 1 FAILED), ")
    assert lines[1].startswith("load: 1 executions, 1 tasks")
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == (
        "error: 1 executions could not be fetched; first: HTTP 503 from GET /v2/p/instances/i-1/replication/"
        "executions/2/tasks, SWR.0503: busy, request id req-fake"
    )
    assert [m["execution_id"] for m in Landing(tmp_path).manifests("tasks")] == [1]


def test_tls_is_verified_and_a_private_ca_or_insecure_must_be_asked_for(tmp_path: Path) -> None:
    import shutil as sh

    if sh.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    with SandboxServer(SandboxConfig(seed=1, scale=0.2), tls=(str(cert), str(key))) as server:
        assert server.url.startswith("https://127.0.0.1:")
        env = sandbox_env(server, tmp_path / "data")
        refused = run_cli(["extract"], env)
        assert refused.returncode == 1
        (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
        assert line.startswith("error: TLS verification failed on GET /v2/sandbox-project/instances")
        assert "--ca-bundle" in line
        trusted = run_cli(["extract", "--ca-bundle", str(cert)], env)
        assert trusted.returncode == 0, trusted.stderr
        assert "TLS verification is OFF" not in trusted.stderr
        insecure = run_cli(["extract", "--insecure"], env)
        assert insecure.returncode == 0, insecure.stderr
        assert insecure.stderr.count("TLS verification is OFF (--insecure)") == 1
    both = run_cli(["extract", "--insecure", "--ca-bundle", str(cert)], env)
    assert both.returncode == 2 and "contradict each other" in both.stderr


def test_an_extract_killed_midway_is_finished_without_fetching_again_what_it_landed(tmp_path: Path) -> None:
    config = SandboxConfig(seed=3, scale=0.5, faults=Faults(latency_ms=40))
    with SandboxServer(config) as server:
        truth = server.truth()
        iid, big = next(
            (i["id"], e) for i in truth["instances"] for e in i["executions"]
            if e["tasks"] >= 1000 and e["status"] in ("Succeed", "Failed", "Stopped")
        )  # fmt: skip
        env = sandbox_env(server, tmp_path)
        args = [sys.executable, "-m", "pipeline", "extract", "--execution-id", str(big["id"]), "--concurrency", "2"]
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        folder = tmp_path / "raw" / "tasks" / f"instance_id={iid}" / f"execution_id={big['id']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(folder.glob("run_id=*/page-*.json.zst"))) < 5:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        (first,) = list(folder.glob("run_id=*"))
        assert not (first / "_manifest.json").exists(), "the run finished before it could be killed"
        journal = [json.loads(line) for line in (first / "_journal.jsonl").read_text().splitlines() if line.strip()]
        pages = [entry["page"] for entry in journal if "page" in entry]
        landed = {page["offset"] for page in pages}  # journaled: safe to reuse
        assert len(landed) >= 3
        # as if an earlier version had landed the first page (gzip), and the second were damaged since
        old, damaged = pages[0], pages[1]
        zst = first / old["file"]
        gz = zst.with_name(zst.name.removesuffix(".zst") + ".gz")
        gz.write_bytes(gzip.compress(decompress_page(zst, zst.read_bytes()), mtime=0))
        zst.unlink()
        (first / "_journal.jsonl").write_text((first / "_journal.jsonl").read_text().replace(old["file"], gz.name))
        (first / damaged["file"]).write_bytes((first / damaged["file"]).read_bytes()[:30])

        server.reset_stats()
        result = run_cli(["-v", "extract", "--execution-id", str(big["id"])], env)
        assert result.returncode == 0, result.stderr
        asked = {int(offset) for offset in server.stats()["tasks_pages"][f"{iid}/{big['id']}"]}
        assert landed & asked == {damaged["offset"]}, "a landed page was fetched again, or the damaged one was not"
        assert "pages reused from an interrupted run" in result.stderr
        assert "not reusing a page of an interrupted run" in result.stderr
    rows = landed_tasks(tmp_path)[(iid, big["id"])]
    assert len({row["id"] for row in rows}) == big["tasks"]
    run = json.loads(max((tmp_path / "raw" / "runs").glob("*.json")).read_text())
    assert run["pages_reused"] == len(landed) - 1
    (manifest,) = (tmp_path / "raw" / "tasks" / f"instance_id={iid}" / f"execution_id={big['id']}").rglob(
        "_manifest.json"
    )
    names = {page["file"] for page in json.loads(manifest.read_bytes())["pages"]}
    assert gz.name in names and any(name.endswith(".json.zst") for name in names)  # both codecs, one fetch
    assert json.loads(manifest.read_bytes())["task_id_repeats"] == len(rows) - big["tasks"]  # a resumed fetch too


def test_a_static_token_refused_in_the_middle_of_a_run_is_a_clear_error(tmp_path: Path) -> None:
    api = fake_api((401, {"error_code": "APIGW.0307", "error_msg": "The token expires."}))
    result = run_against(api, tmp_path, ["run"])
    assert result.returncode == 1
    assert result.stdout.startswith("extract: 2 executions in 1 instances")  # the summary comes first
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(
        "error: HTTP 401 from GET /v2/p/instances/i-1/replication/executions/2/tasks, APIGW.0307: The token expires., "
        "request id req-fake (check SWR_AUTH_TOKEN"
    )
    assert "tok-SECRET-123456" not in result.stdout + result.stderr


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_sandbox_says_so_when_it_listens_beyond_loopback(host: str, warned: bool) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--host", host, "--port", "0"],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "sandbox listening on http://" in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert ("not only on loopback" in err) is warned
