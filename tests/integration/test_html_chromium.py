"""The HTML report in a real browser (Debian's headless Chromium): no console messages at all,
the chart elements present in the rendered DOM, and a screenshot that is not blank.

Console messages are read from Chromium's own log (``--enable-logging=stderr``: each console
call, uncaught error or failed load is an ``INFO:CONSOLE`` line); a control page with a thrown
error shows that this check sees them. Pixels are decoded with Pillow (a matplotlib dependency).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import export_fixture
import pytest
from PIL import Image

from fleet_tui.cli.exports import report_table
from fleet_tui.export import render
from fleet_tui.export.chart_data import chart_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and os.environ.get("FLEET_TUI_REQUIRE_CHROMIUM") == "1":
    raise RuntimeError("FLEET_TUI_REQUIRE_CHROMIUM=1, but chromium is missing (apt-get install chromium)")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium (Debian package chromium) is not installed"
)


def chromium(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp)},
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


class _Charts(HTMLParser):
    """Counts chart figures and, inside each, svg and drawing elements."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, int | str]] = []
        self._inside = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "figure" and values.get("class") == "chart":
            self.figures.append({"kind": values.get("data-chart") or "", "svg": 0, "drawn": 0})
            self._inside += 1
        elif self._inside and tag == "svg":
            self.figures[-1]["svg"] = int(self.figures[-1]["svg"]) + 1
        elif self._inside and tag in ("path", "use", "rect", "polygon", "line"):
            self.figures[-1]["drawn"] = int(self.figures[-1]["drawn"]) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._inside:
            self._inside -= 1


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("html")
    fx = export_fixture.build(tmp / "fleet.db")
    with fx.store:
        table = report_table(fx.store, fx.run_id)
        page = tmp / "report.html"
        page.write_bytes(render(table, "html", chart_data(fx.store, table)))
    yield page


def test_report_renders_without_console_messages_and_with_its_charts(report: Path, tmp_path: Path) -> None:
    result = chromium(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    parser = _Charts()
    parser.feed(result.stdout)
    kinds = [f["kind"] for f in parser.figures]
    assert {"latency-distribution", "p95-ci", "sustained", "cost-per-million"} <= set(kinds)
    for figure in parser.figures:
        assert figure["svg"] == 1, figure
        assert int(figure["drawn"]) > 20, figure  # axes, ticks, violins, error bars, lines, bands
    assert re.search(r"<table class=\"results\"", result.stdout)


def test_report_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = chromium(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,5200")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        # The lower part of the page holds the charts: it must be drawn, in several colours.
        charts = rgb.crop((0, height // 2, width, height))
        colours = charts.getcolors(maxcolors=1 << 20) or []
        not_white = sum(count for count, colour in colours if colour != (255, 255, 255))
    assert len(colours) > 100, f"only {len(colours)} distinct colours"
    assert not_white / (charts.width * charts.height) > 0.05
    palette = {(31, 119, 180), (255, 127, 14), (44, 160, 44)}  # the three nodes' colours
    assert palette <= {colour for _, colour in colours}


def test_the_console_check_sees_errors_and_a_blank_page_is_blank(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><p>x</p><script>throw new Error("boom")</script></body></html>')
    lines = console_lines(chromium(bad, tmp_path, "--dump-dom").stderr)
    assert any("Uncaught Error: boom" in line for line in lines)
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    shot = tmp_path / "blank.png"
    chromium(blank, tmp_path, f"--screenshot={shot}", "--window-size=400,300")
    with Image.open(shot) as image:
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) <= 2
