"""A simulated Huawei Cloud SWR Enterprise Edition replication API on loopback (stdlib only).

``SandboxServer(SandboxConfig(seed=1, scale=0.5, faults=Faults(rate_429=0.1))).start()`` serves a
deterministic :class:`World` at ``server.url``; see :mod:`pipeline.sandbox.server` for the endpoints.
"""

from __future__ import annotations

from pipeline.sandbox.faults import Faults
from pipeline.sandbox.server import SandboxServer
from pipeline.sandbox.settings import SandboxConfig
from pipeline.sandbox.world import World

__all__ = ["Faults", "SandboxConfig", "SandboxServer", "World"]
