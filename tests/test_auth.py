"""The authentication classes: each against the sandbox (which verifies AK/SK signatures), and their reprs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pipeline.api.auth import METHODS, AkSkAuth, IamAuth, TokenAuth, auth_for
from pipeline.api.client import SwrClient
from pipeline.api.transport import Transport
from pipeline.config import Credentials, Settings
from pipeline.errors import AuthError
from pipeline.logs import RedactSecrets
from pipeline.sandbox import SandboxConfig, SandboxServer

AK, SK = "AKAUTHTEST00000042", "sk-AUTH-SECRET-0042"
SECURITY_TOKEN = "st-AUTH-SECRET-0042"
PASSWORD = "pw-AUTH-SECRET-0042"
TOKEN = "tok-AUTH-SECRET-0042"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(seed=3, scale=0.1, token=TOKEN, ak=AK, sk=SK, iam_password=PASSWORD)
    with SandboxServer(config) as srv:
        yield srv


def settings_for(server: SandboxServer, credentials: Credentials) -> Settings:
    return Settings(
        endpoint=server.url,
        project_id=server.config.project_id,
        credentials=credentials,
        data_dir=Path("unused"),
        max_attempts=1,
    )


def iam_credentials(server: SandboxServer, password: str = PASSWORD) -> Credentials:
    config = server.config
    return Credentials(
        "iam",
        iam_username=config.iam_username,
        iam_password=password,
        iam_domain=config.iam_domain,
        iam_endpoint=server.url,
    )


def prepared(server: SandboxServer, path: str, params: dict[str, object]) -> requests.PreparedRequest:
    return requests.Request("GET", f"{server.url}{path}", params=params).prepare()


def test_the_chooser_picks_one_class_per_kind(server: SandboxServer) -> None:
    cases = {
        "token": Credentials("token", token=TOKEN),
        "aksk": Credentials("aksk", ak=AK, sk=SK),
        "iam": iam_credentials(server),
    }
    assert set(METHODS) == set(cases)
    settings = settings_for(server, cases["token"])
    transport = Transport(settings)
    try:
        kinds = {kind: type(auth_for(settings_for(server, c), transport)) for kind, c in cases.items()}
    finally:
        transport.close()
    assert kinds == {"token": TokenAuth, "aksk": AkSkAuth, "iam": IamAuth}


@pytest.mark.parametrize("security_token", [None, SECURITY_TOKEN])
def test_aksk_signs_the_final_url_and_headers_as_the_sandbox_verifies(
    server: SandboxServer, security_token: str | None
) -> None:
    path = f"/v2/{server.config.project_id}/instances"
    request = AkSkAuth(AK, SK, server.config.project_id, security_token)(
        prepared(server, path, {"offset": 0, "limit": 100, "name": "a b/ü"})
    )
    assert request.url == f"{server.url}{path}?limit=100&name=a%20b%2F%C3%BC&offset=0"  # the signer's canonical form
    signed = "host;x-project-id;x-sdk-date" + (";x-security-token" if security_token else "")
    assert request.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={signed}, ")
    assert request.headers.get("X-Security-Token") == security_token
    assert all(SK not in v for v in request.headers.values())
    with requests.Session() as session:
        assert session.send(request, timeout=10).status_code == 200
        assert request.url is not None
        tampered = request.copy()
        tampered.url = request.url.replace("limit=100", "limit=10")
        assert session.send(tampered, timeout=10).status_code == 401  # the query is covered by the signature


def test_aksk_through_the_client_is_accepted_and_a_wrong_key_refused(server: SandboxServer) -> None:
    with SwrClient(settings_for(server, Credentials("aksk", ak=AK, sk=SK))) as client:
        path = client.path("instances")
        assert client.get(path, {"offset": 0, "limit": 1}).status == 200
    with (
        SwrClient(settings_for(server, Credentials("aksk", ak=AK, sk=SK + "-wrong"))) as client,
        pytest.raises(AuthError) as info,
    ):
        client.get(client.path("instances"))
    assert info.value.status == 401


def test_token_auth_sets_the_header(server: SandboxServer) -> None:
    request = TokenAuth(TOKEN)(prepared(server, "/v2/p/instances", {}))
    assert request.headers["X-Auth-Token"] == TOKEN


def test_iam_fetches_once_registers_the_token_and_refreshes_on_demand(server: SandboxServer) -> None:
    with SwrClient(settings_for(server, iam_credentials(server))) as client:
        auth = client.auth
        assert isinstance(auth, IamAuth)
        first = auth.token()
        assert RedactSecrets([]).redact(f"token {first}") == "token ***"  # registered the moment it was issued
        assert auth.token() == first
        client.get(client.path("instances"))
        second = auth.refresh()
        assert second != first
        assert auth.refresh(stale=first) == second  # already replaced: no new fetch
        assert client.get(client.path("instances")).status == 200


def test_a_refused_iam_login_is_an_auth_error_of_the_post(server: SandboxServer) -> None:
    with SwrClient(settings_for(server, iam_credentials(server, "wrong-AUTH-SECRET"))) as client:
        auth = client.auth
        assert isinstance(auth, IamAuth)
        with pytest.raises(AuthError) as info:
            auth.refresh()
    assert (info.value.status, info.value.method) == (401, "POST")
    assert "wrong-AUTH-SECRET" not in str(info.value)


def test_no_repr_shows_a_secret(server: SandboxServer) -> None:
    settings = settings_for(server, Credentials("token", token=TOKEN))
    transport = Transport(settings)
    try:
        auths = [
            TokenAuth(TOKEN),
            AkSkAuth(AK, SK, "p", SECURITY_TOKEN),
            auth_for(settings_for(server, iam_credentials(server)), transport),
        ]
        texts = [repr(a) for a in auths]
    finally:
        transport.close()
    assert texts[0] == "TokenAuth()"
    assert texts[1] == "AkSkAuth(project_id='p', security_token=set)"
    assert texts[2] == f"IamAuth(username='sandbox-user', domain='sandbox-domain', endpoint='{server.url}')"
    for text in texts:
        for secret in (TOKEN, AK, SK, SECURITY_TOKEN, PASSWORD):
            assert secret not in text
