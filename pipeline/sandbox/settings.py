"""Settings of the sandbox server: identities, secrets and fault knobs."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.sandbox.faults import Faults

__all__ = ["DEFAULT_CONFIG", "ENV_VARS", "SandboxConfig"]

#: Environment variable -> SandboxConfig field. The client reads the same names, so one environment
#: drives both sides.
ENV_VARS: Mapping[str, str] = {
    "SWR_AUTH_TOKEN": "token",
    "CLOUD_SDK_AK": "ak",
    "CLOUD_SDK_SK": "sk",
    "SWR_PROJECT_ID": "project_id",
    "SWR_IAM_USERNAME": "iam_username",
    "SWR_IAM_PASSWORD": "iam_password",
    "SWR_IAM_DOMAIN": "iam_domain",
}


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a :class:`~pipeline.sandbox.server.SandboxServer` needs. Secrets are kept out of repr."""

    seed: int = 0
    scale: float = 1.0
    project_id: str = "sandbox-project"
    token: str = field(default="sandbox-token", repr=False)
    ak: str = "SANDBOXACCESSKEY0001"
    sk: str = field(default="sandbox-secret-key", repr=False)
    iam_username: str = "sandbox-user"
    iam_password: str = field(default="sandbox-password", repr=False)
    iam_domain: str = "sandbox-domain"
    faults: Faults = field(default_factory=Faults)
    #: keep every task page served in memory and serve it again from there: for benchmarks, so that the
    #: sandbox (a stand-in for a remote server) spends almost no CPU of the machine it shares with the client
    cache_pages: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SandboxConfig:
        """Defaults, then the variables of :data:`ENV_VARS` that are set and non-empty, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {name: env[var] for var, name in ENV_VARS.items() if env.get(var)}
        values.update(overrides)
        return dataclasses.replace(cls(), **values)


#: The configuration used when none is given.
DEFAULT_CONFIG = SandboxConfig()
