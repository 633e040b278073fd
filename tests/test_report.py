"""`swr-etl report`: the terminal text, the JSON, and the HTML page rendered in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

PATH_ONLY = {"PATH": os.environ["PATH"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo")
    result = run_cli(["demo", "--data-dir", str(data_dir)], PATH_ONLY)
    assert result.returncode == 0, result.stderr
    return data_dir


def test_text_report_fits_100_columns_and_agrees_with_the_views(demo: Path) -> None:
    result = run_cli(["report", "--data-dir", str(demo)], PATH_ONLY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    for heading in ("At a glance", "Health per policy", "Repositories failing most", "Recent failures", "Drift"):
        assert any(line.startswith(heading) for line in lines), heading
    data = json.loads(run_cli(["report", "--data-dir", str(demo), "--format", "json"], PATH_ONLY).stdout)
    as_query = run_cli(
        ["query", "SELECT count(*) AS n FROM tasks", "--format", "json", "--data-dir", str(demo)], PATH_ONLY
    )
    assert data["totals"]["tasks"] == json.loads(as_query.stdout)[0]["n"]
    assert sum(p["tasks"] for p in data["policies"]) > 0
    assert data["recent_failures"], "the demo world has failed tasks"
    missing = next(d for d in data["drift"]["by_kind"] if d["kind"] == "missing")
    assert f"{missing['tags']:,} tags on a copy's source never reached its destination" in result.stdout


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_is_self_contained_and_its_charts_draw(demo: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    result = run_cli(["report", "--data-dir", str(demo), "--html", str(page)], PATH_ONLY)
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "<script" not in html and "<link" not in html
    # nothing to fetch: no tag names an address (failure texts may quote one, as escaped text), the CSS neither
    tags = [tag.replace('xmlns="http://www.w3.org/2000/svg"', "") for tag in re.findall(r"<[^>]*>", html)]
    assert not [tag for tag in tags if re.search(r"https?:|//|\b(?:src|href)\s*=", tag)]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in style and "@import" not in style
    assert html.count("<svg") == 4
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it")
        pytest.skip("chromium is not installed here (.ci/run installs it in CI)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1100,9000",
         "--hide-scrollbars", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []

    def pixels_near(rgb: tuple[int, int, int]) -> int:
        return sum(n for n, c in colors if all(abs(a - b) <= 12 for a, b in zip(c, rgb, strict=True)))

    # each chart has its own colour: every one must have drawn something
    assert pixels_near((0x25, 0x63, 0xEB)) > 200, "success-rate lines"
    assert pixels_near((0xDC, 0x26, 0x26)) > 200, "failures by repository"
    assert pixels_near((0x7C, 0x3A, 0xED)) > 200, "duration histogram"
    assert pixels_near((0x16, 0xA3, 0x4A)) > 200, "daily throughput"
