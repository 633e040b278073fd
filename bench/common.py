"""Helpers shared by the benchmarks: run a command and measure its wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    wall_s: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    cpu_s: float = 0.0  # user and system CPU time of the command and the children it waited for


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(extra)
    return env


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd``: its wall time, and its peak resident memory as the kernel counted it (``wait4``'s
    ``ru_maxrss``, the high-water mark of the process and of the children it waited for: exact, where
    sampling /proc could miss a short peak, and free, where a sampler polling every 20 ms took 3 to 5% of a
    core from the command it measured on this 2-core machine)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env or clean_env(), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, usage.ru_maxrss / 1024, stdout, stderr, cpu)  # ru_maxrss is in KiB on Linux
