"""``swr-etl doctor``: check, one step at a time, everything a run needs, and say what to do about what fails.

The checks are in :mod:`pipeline.cli.checks`, one function each; :func:`diagnose` runs them in order and skips
those an earlier failure makes pointless (no TLS to check without a connection). Nothing here prints: the
command renders the :class:`Report`, as text or JSON. No detail ever holds a secret: the credentials are named
by their kind and variables, errors come from the client (which masks every secret it knows), and the render
masks the environment's secrets once more.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.api.client import SwrClient
from pipeline.cli.checks import (
    Check,
    check_connection,
    check_credentials,
    check_data_dir,
    check_disk,
    check_iam_token,
    check_lake,
    check_project,
    check_settings,
    check_tls,
    check_warehouse,
    endpoint_address,
    list_instances,
    skipped,
)
from pipeline.config import Settings
from pipeline.errors import DoctorFailed, SwrEtlError
from pipeline.text import dumps, terminal_safe

ASCII_MARKS = {"pass": "OK  ", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "skip": "-"}


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def raise_for_failures(self) -> None:
        if self.failed:
            names = ", ".join(c.name for c in self.failed)
            raise DoctorFailed(f"{len(self.failed)} of {len(self.checks)} checks failed: {names} (see the report)")


# -- all of them --------------------------------------------------------------------------------------------
def diagnose(resolve: Callable[[bool], Settings], environ: Mapping[str, str] | None = None) -> Report:
    """Every check, in order. ``resolve(need_api)`` gives the settings as the command's flags make them."""
    environ = os.environ if environ is None else environ
    first, full, local = check_settings(resolve, environ)
    checks = [first]
    if local is None or endpoint_address(local.endpoint) is None:
        checks += [skipped(n, "no usable endpoint in the settings") for n in ("connection", "tls")]
    else:
        checks.append(guarded("connection", check_connection, local))
        reached = checks[-1].status == "pass"
        checks.append(guarded("tls", check_tls, local, environ) if reached else skipped("tls", "no connection"))
    checks += api_checks(full, checks)
    if local is None:
        return Report(checks + [skipped(n, "the settings do not resolve") for n in LOCAL_CHECKS])
    checks.append(guarded("data_dir", check_data_dir, local))
    usable = checks[-1].status == "pass"
    if local.lake is None and not usable:
        checks.append(skipped("lake", "it is in the data directory, which is not usable"))
    else:
        checks.append(guarded("lake", check_lake, local, environ))
    checks.append(guarded("disk_space", check_disk, local.data_dir))
    unusable = skipped("warehouse", "the data directory is not usable")
    checks.append(guarded("warehouse", check_warehouse, local) if usable else unusable)
    return Report(checks)


LOCAL_CHECKS = ("data_dir", "lake", "disk_space", "warehouse")


def guarded(name: str, check: Callable[..., Check], *args: Any) -> Check:
    """A check that met an error none of its cases foresaw (an unreadable folder): a failure, not a crash,
    so that the checks after it still run."""
    try:
        return check(*args)
    except (OSError, SwrEtlError) as exc:
        return Check(name, "fail", f"{type(exc).__name__}: {exc}", "fix what the message names, and run doctor again")


def api_checks(settings: Settings | None, before: list[Check]) -> list[Check]:
    """The IAM token (for IAM credentials), the credentials and the project: one cheap call, tried only when
    the settings resolve and the endpoint was reached."""
    names = ["credentials", "project"]
    if settings is not None and settings.credentials.kind == "iam":
        names.insert(0, "iam_token")
    if settings is None:
        return [skipped(n, "the settings do not resolve") for n in names]
    if any(c.status == "fail" for c in before[1:]):
        return [skipped(n, "the connection or TLS failed") for n in names]
    quick = replace(settings, concurrency=1, max_attempts=min(settings.max_attempts, 2))
    with SwrClient(quick) as client:
        checks = []
        if settings.credentials.kind == "iam":
            checks.append(check_iam_token(client))
            if checks[-1].status == "fail":
                return checks + [skipped(n, "no IAM token") for n in names[1:]]
        call = list_instances(client)
    return [*checks, check_credentials(call), check_project(settings, call)]


# -- rendering ----------------------------------------------------------------------------------------------
def render(report: Report, fmt: str, redact: Callable[[str], str]) -> str:
    """The report as text for people (one line per check) or as one JSON object; secrets masked in both."""
    checks = [replace(c, detail=redact(c.detail), fix=redact(c.fix)) for c in report.checks]
    if fmt == "json":
        rows = [{"name": c.name, "ok": c.ok, "status": c.status, "detail": c.detail, "fix": c.fix} for c in checks]
        return dumps({"ok": not report.failed, "checks": rows}, indent=2) + "\n"
    marks = MARKS if _can_print("".join(MARKS.values())) else ASCII_MARKS
    width = max(len(c.name) for c in checks) + 2
    lines = []
    for c in checks:
        label = c.name.replace("_", " ")
        fix = f" ({c.fix})" if c.fix and c.status in ("fail", "warn") else ""
        lines.append(terminal_safe(f"{marks[c.status]} {label:<{width}}{c.detail}{fix}"))
    warned = sum(c.status == "warn" for c in checks)
    if report.failed:
        lines.append(f"doctor: {len(report.failed)} of {len(checks)} checks failed")
    else:
        lines.append(f"doctor: all checks passed{f' ({warned} warnings)' if warned else ''}")
    return "\n".join(lines) + "\n"


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
