"""The demo's closing "Next:" lines work exactly as printed, from the clone, with nothing else installed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

VENV_CLI = Path(sys.executable).parent / "swr-etl"


def test_every_next_step_the_demo_prints_runs_as_printed(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # swr-etl is not on the PATH, as under make run
    cli = os.path.relpath(VENV_CLI, ROOT)
    demo = subprocess.run(
        [cli, "demo", "--data-dir", str(data_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    steps = [line.strip() for line in lines[lines.index(next(x for x in lines if x.startswith("Next:"))) + 1 :]]
    commands = [step for step in steps if not step.startswith("(")]
    assert len(commands) == 3
    for command in commands:
        assert command.startswith(f"{cli} ")
        result = subprocess.run(
            shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
    assert (data_dir / "report.html").is_file()
