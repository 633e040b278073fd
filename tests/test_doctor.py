"""``swr-etl doctor``: every check through the real CLI, against the sandbox, loopback servers and moto's S3."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections import namedtuple
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import S3Server, clean_env, run_cli, sandbox_env

from pipeline.cli.checks import check_disk
from pipeline.sandbox import SandboxConfig, SandboxServer

CHECKS = ["settings", "connection", "tls", "credentials", "project", "data dir", "lake", "disk space", "warehouse"]
# distinctive values: none may ever appear in what the doctor prints
TOKEN = "tok-DOCTOR-SECRET-4711"
WRONG_TOKEN = "tok-DOCTOR-WRONG-SECRET-0815"
AK, SK = "AKDOCTORSECRET000042", "sk-DOCTOR-SECRET-9z8y7x"
IAM_PASSWORD = "pw-DOCTOR-SECRET-31337"
SECRETS = (TOKEN, WRONG_TOKEN, SK, IAM_PASSWORD, S3Server.SECRET_KEY)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """The sandbox with distinctive secrets (the default fixture's are documented values)."""
    config = SandboxConfig(seed=7, scale=0.3, token=TOKEN, ak=AK, sk=SK, iam_password=IAM_PASSWORD)
    with SandboxServer(config) as sandbox:
        yield sandbox


def lines(stdout: str) -> dict[str, str]:
    """Each check's line by its label: the mark and the rest."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(✓|✗|!|-) (\w+(?: \w+)?) +(.*)$", line)
        if match and match.group(2) in (*CHECKS, "iam token"):
            found[match.group(2)] = f"{match.group(1)} {match.group(3)}"
    return found


def assert_no_secret(*outputs: str) -> None:
    for secret in SECRETS:
        for output in outputs:
            assert secret not in output


def doctor(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, str], subprocess.CompletedProcess[str]]:
    result = run_cli(["-vv", "doctor", *args], env)
    assert_no_secret(result.stdout, result.stderr)
    return result.returncode, lines(result.stdout), result


def test_every_check_passes_against_the_sandbox_before_and_after_a_run(server: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(server, tmp_path / "data")
    code, found, result = doctor([], env)
    assert code == 0, result.stdout + result.stderr
    assert list(found) == CHECKS and all(line.startswith("✓") for line in found.values()), result.stdout
    assert "a token (SWR_AUTH_TOKEN)" in found["settings"]
    assert "plain http, not TLS" in found["tls"]
    assert found["credentials"].endswith(f": HTTP 200, {len(server.world.instances())} instances")
    assert "does not exist yet" in found["data dir"] and "not built yet" in found["warehouse"]
    assert result.stdout.strip().splitlines()[-1] == "doctor: all checks passed"
    assert not (tmp_path / "data").exists()  # the doctor creates nothing where there was nothing

    assert run_cli(["run"], env).returncode == 0
    code, found, result = doctor([], env)
    assert code == 0, result.stdout
    assert "holds a raw landing and a lake" in found["data dir"]
    assert "is writable (a file written and deleted in _doctor/); it holds the lake's tables" in found["lake"]
    assert re.search(r"opens read-only: \d+ views", found["warehouse"])
    assert not (tmp_path / "data" / "lake" / "_doctor").exists()
    assert not list((tmp_path / "data").glob(".swr-etl-doctor-*"))


def test_a_bad_token_fails_the_credentials_and_the_local_checks_run(server: SandboxServer, tmp_path: Path) -> None:
    code, found, result = doctor([], sandbox_env(server, tmp_path, SWR_AUTH_TOKEN=WRONG_TOKEN))
    assert code == 1
    assert found["credentials"].startswith(
        "✗ refused: HTTP 401 from GET /v2/sandbox-project/instances, APIGW.0301: Incorrect IAM authentication "
    )
    assert "(check SWR_AUTH_TOKEN, or CLOUD_SDK_AK/CLOUD_SDK_SK, or the SWR_IAM_* settings" in found["credentials"]
    assert found["project"] == "- not checked: the call above failed"
    for name in ("settings", "connection", "tls", "data dir", "lake", "disk space", "warehouse"):
        assert found[name].startswith("✓"), found[name]
    assert result.stdout.strip().splitlines()[-1] == "doctor: 1 of 9 checks failed"
    assert result.stderr.strip().splitlines()[-1] == "error: 1 of 9 checks failed: credentials (see the report)"


def test_a_token_echoed_by_a_refusal_is_masked(tmp_path: Path) -> None:
    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # a gateway that repeats the token it was sent
            message = f"The token {self.headers.get('X-Auth-Token')} is invalid"
            body = json.dumps({"error_code": "APIGW.0301", "error_msg": message}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    from test_hostile_http import serve

    with serve(Echo) as url:
        env = clean_env(SWR_ENDPOINT=url, SWR_PROJECT_ID="p", SWR_AUTH_TOKEN=TOKEN, SWR_ETL_DATA_DIR=str(tmp_path))
        code, found, _ = doctor([], env)
    assert code == 1
    assert "refused: HTTP 401 from GET /v2/p/instances, APIGW.0301: The token *** is invalid" in found["credentials"]


@pytest.mark.parametrize(
    ("env", "credentials"),
    [
        ({"SWR_AUTH_TOKEN": "", "CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK}, "AK/SK (CLOUD_SDK_AK, CLOUD_SDK_SK)"),
        (
            {"SWR_AUTH_TOKEN": "", "SWR_IAM_USERNAME": "sandbox-user", "SWR_IAM_PASSWORD": IAM_PASSWORD},
            "IAM user sandbox-user of domain sandbox-domain (SWR_IAM_*)",
        ),
        ({"CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK}, "a token (SWR_AUTH_TOKEN); also set, not used: CLOUD_SDK_AK/SK"),
    ],
    ids=["aksk", "iam", "token-and-aksk"],
)
def test_each_kind_of_credentials_is_named_and_checked(
    server: SandboxServer, tmp_path: Path, env: dict[str, str], credentials: str
) -> None:
    iam = {"SWR_IAM_DOMAIN": "sandbox-domain", "SWR_IAM_ENDPOINT": server.url} if "SWR_IAM_USERNAME" in env else {}
    code, found, result = doctor([], sandbox_env(server, tmp_path, **env, **iam))
    assert code == 0, result.stdout + result.stderr
    assert credentials in found["settings"]
    assert found["credentials"].startswith("✓ GET /v2/sandbox-project/instances?limit=1: HTTP 200, ")
    if iam:
        assert list(found)[3] == "iam token" and found["iam token"].endswith(": a token was issued")


def test_a_refused_iam_login_fails_before_any_call_to_swr(server: SandboxServer, tmp_path: Path) -> None:
    env = {"SWR_AUTH_TOKEN": "", "SWR_IAM_USERNAME": "sandbox-user", "SWR_IAM_PASSWORD": WRONG_TOKEN}
    env |= {"SWR_IAM_DOMAIN": "sandbox-domain", "SWR_IAM_ENDPOINT": server.url}
    code, found, _ = doctor([], sandbox_env(server, tmp_path, **env))
    assert code == 1
    assert found["iam token"].startswith("✗ IAM user sandbox-user of domain sandbox-domain at http://127.0.0.1:")
    assert "refused: HTTP 401" in found["iam token"]
    assert "check SWR_IAM_USERNAME, SWR_IAM_PASSWORD" in found["iam token"]
    assert found["credentials"] == "- not checked: no IAM token"


def test_a_project_the_endpoint_does_not_know_fails_the_project_check(server: SandboxServer, tmp_path: Path) -> None:
    code, found, _ = doctor(["--project-id", "other-project"], sandbox_env(server, tmp_path))
    assert code == 1
    assert found["credentials"].startswith("✓ not refused: HTTP 404 from GET /v2/other-project/instances")
    assert found["project"].startswith(
        "✗ project other-project: HTTP 404 from GET /v2/other-project/instances, SWR.0404: the project does not exist"
    )
    assert "check SWR_PROJECT_ID (--project-id)" in found["project"]


def test_an_unreachable_port_fails_the_connection_and_skips_the_api(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = clean_env(SWR_ENDPOINT=f"http://127.0.0.1:{port}", SWR_PROJECT_ID="p", SWR_AUTH_TOKEN=TOKEN)
    code, found, _ = doctor(["--data-dir", str(tmp_path), "--connect-timeout", "2"], env)
    assert code == 1
    assert found["connection"].startswith(f"✗ 127.0.0.1; TCP port {port}: Connection refused (check the port")
    for name in ("tls", "credentials", "project"):
        assert found[name].startswith("- not checked: "), found[name]
    assert found["data dir"].startswith("✓") and found["lake"].startswith("✓")


def test_https_to_a_plain_http_server_is_named_as_such(server: SandboxServer, tmp_path: Path) -> None:
    endpoint = server.url.replace("http://", "https://")
    code, found, _ = doctor([], sandbox_env(server, tmp_path, SWR_ENDPOINT=endpoint))
    assert code == 1
    assert found["connection"].startswith("✓")
    assert found["tls"] == (
        f"✗ the server at {endpoint} answers plain HTTP, not TLS (use http:// in the endpoint, or check its port)"
    )
    assert found["credentials"] == "- not checked: the connection or TLS failed"


def test_tls_is_verified_with_the_ca_bundle_a_run_would_use(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "30", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    config = SandboxConfig(seed=1, scale=0.2, token=TOKEN)
    with SandboxServer(config, tls=(str(cert), str(key))) as tls_server:
        env = sandbox_env(tls_server, tmp_path / "data")
        refused_code, refused, _ = doctor([], env)
        trusted_code, trusted, _ = doctor(["--ca-bundle", str(cert)], env)
        insecure_code, insecure, _ = doctor(["--insecure"], env)
    assert refused_code == 1
    assert refused["tls"].startswith("✗ the certificate is not verified (the default CA bundle): self")
    assert "a private CA needs --ca-bundle FILE" in refused["tls"]
    assert trusted_code == 0
    assert re.match(rf"✓ TLSv1\.[23], the certificate of 127\.0\.0\.1 verified \(--ca-bundle {cert}\), valid until ",
                    trusted["tls"])  # fmt: skip
    assert trusted["credentials"].startswith("✓")
    assert insecure_code == 0  # a warning, not a failure
    assert insecure["tls"].startswith("! TLSv1.") and "NOT verified (--insecure)" in insecure["tls"]


def test_a_data_dir_that_is_a_file_fails_and_what_lives_in_it_is_skipped(server: SandboxServer, tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_text("not a folder")
    code, found, result = doctor([], sandbox_env(server, data_file))
    assert code == 1
    fix = "give --data-dir (or SWR_ETL_DATA_DIR) a folder you can write, or fix its permissions"
    assert found["data dir"] == f"✗ {data_file} is a file, not a folder ({fix})"
    assert found["lake"].startswith("- not checked") and found["warehouse"].startswith("- not checked")
    assert found["credentials"].startswith("✓") and found["disk space"].startswith("✓")
    assert "checks failed: data_dir" in result.stderr


def test_a_lake_in_s3_is_written_and_cleaned_and_a_missing_bucket_fails(
    server: SandboxServer, s3_server: S3Server, tmp_path: Path
) -> None:
    import pyarrow.fs as pafs

    bucket = s3_server.bucket()
    env = sandbox_env(server, tmp_path / "data", **s3_server.env())
    code, found, result = doctor(["--lake", f"s3://{bucket}/swr/lake"], env)
    assert code == 0, result.stdout + result.stderr
    written = "is writable (a file written and deleted in _doctor/); no tables yet"
    assert found["lake"] == f"✓ s3://{bucket}/swr/lake {written}"
    fs = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint,
        scheme="http",
        region="us-east-1",
        access_key=s3_server.ACCESS_KEY,
        secret_key=s3_server.SECRET_KEY,
    )
    left = [i.path for i in fs.get_file_info(pafs.FileSelector(bucket, recursive=True))]
    assert not [p for p in left if "_doctor" in p], left

    code, found, _ = doctor(["--lake", "s3://no-such-bucket/lake"], env)
    assert code == 1
    assert found["lake"].startswith("✗ s3://no-such-bucket/lake is not writable: ")
    assert "(create the bucket no-such-bucket, or check its name in --lake and AWS_ENDPOINT_URL_S3)" in found["lake"]


def test_settings_that_do_not_resolve_fail_first_and_the_local_checks_still_run(tmp_path: Path) -> None:
    code, found, _ = doctor(["--data-dir", str(tmp_path)], clean_env())
    assert code == 1
    assert found["settings"].startswith("✗ no endpoint: give --endpoint or set SWR_ENDPOINT; no project id: ")
    assert "no credentials: set SWR_AUTH_TOKEN" in found["settings"]
    for name in ("connection", "tls", "credentials", "project"):
        assert found[name].startswith("- not checked: "), found[name]
    assert found["data dir"].startswith(f"✓ {tmp_path} is writable; it holds no landing or lake yet")


def test_json_gives_one_object_for_scripts(server: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["doctor", "--format", "json"], sandbox_env(server, tmp_path, SWR_AUTH_TOKEN=WRONG_TOKEN))
    assert result.returncode == 1
    assert_no_secret(result.stdout, result.stderr)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    names = [c["name"] for c in report["checks"]]
    assert names == [n.replace(" ", "_") for n in CHECKS]
    by_name = {c["name"]: c for c in report["checks"]}
    assert set(by_name["credentials"]) == {"name", "ok", "status", "detail", "fix"}
    assert by_name["credentials"]["ok"] is False and "HTTP 401" in by_name["credentials"]["detail"]
    assert by_name["credentials"]["fix"].startswith("check SWR_AUTH_TOKEN")
    assert by_name["project"]["ok"] is None and by_name["project"]["status"] == "skip"
    assert by_name["settings"] == {**by_name["settings"], "ok": True, "status": "pass", "fix": ""}


@pytest.mark.parametrize("args", [["--format", "xml"], ["--connect-timeout", "soon"], ["--no-such-flag"]])
def test_a_usage_error_exits_2(server: SandboxServer, tmp_path: Path, args: list[str]) -> None:
    result = run_cli(["doctor", *args], sandbox_env(server, tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "swr-etl doctor --help" in result.stderr


def test_a_terminal_that_cannot_print_the_marks_gets_words(server: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(["doctor"], sandbox_env(server, tmp_path, PYTHONIOENCODING="ascii"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK   settings ")


Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize(
    ("free_mib", "status"), [(50, "fail"), (500, "warn"), (5000, "pass")], ids=["under-100MiB", "under-1GiB", "ok"]
)
def test_free_space_warns_under_1_gib_and_fails_under_100_mib(tmp_path: Path, free_mib: int, status: str) -> None:
    check = check_disk(tmp_path / "not-yet", usage=lambda _: Usage(100 << 30, 0, free_mib << 20))
    assert check.status == status
    assert check.detail.endswith(f"GiB free of 100.0 GiB at {tmp_path}")
    assert bool(check.fix) == (status != "pass")
