"""The HTML report in a real browser: Debian's headless Chromium driven by playwright (never `playwright install`).

Checks that the page makes no network request, that its tables and pictures render, that clicking a column header
sorts numerically (31.2 > 12.4 > 9.8, which a text sort gets wrong) with the arrow showing the direction, that the
breakdowns expand, and saves a full-page screenshot to tmp_path.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from playwright import sync_api

from seeclear_bench.metrics.scoring import GT_METHOD
from seeclear_bench.metrics.tables import write_parquet
from seeclear_bench.report.merge import load_results

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.slow,  # about 8 s: starts Chromium
]


@pytest.fixture(scope="module", autouse=True)
def chromium(allowed_skip) -> None:
    """Debian's Chromium, which `make chromium` installs where it can (playwright itself is a test dependency)."""
    if not Path(CHROMIUM).exists():
        allowed_skip("no-browser", f"nothing at {CHROMIUM} (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def page_file(tiny_run, tmp_path_factory, make_table) -> Path:
    from pipelines.report import run

    folder = tmp_path_factory.mktemp("browser")
    clips = ("000", "011", "015")
    synthetic = pd.concat([
        make_table("good", "D", {c: {"psnr": [31.2, 31.2], "niqe": [4.0, 4.0]} for c in clips}),
        make_table("bad", "D", {c: {"psnr": [9.8, 9.8], "niqe": [7.0, 7.0]} for c in clips}),
        make_table("mid", "D", {c: {"psnr": [12.4, 12.4], "niqe": [5.0, 5.0]} for c in clips}),
        make_table(GT_METHOD, "D", {c: {"niqe": [3.0, 3.0]} for c in clips}),
    ], ignore_index=True)
    write_parquet(synthetic, str(folder / "d.parquet"))
    out = folder / "board"
    run(load_results([tiny_run, str(folder / "d.parquet")]), str(out), title="Browser check",
        command="seeclear-bench leaderboard RUN d.parquet", reference="bad")
    return out / "leaderboard.html"


def column_values(page, table: str, column: int) -> list[str]:
    return page.eval_on_selector_all(f"table.{table} tbody tr",
                                     f"rows => rows.map(r => r.cells[{column}].getAttribute('data-v'))")


def test_report_renders_sorts_and_is_offline_in_chromium(page_file: Path, tmp_path: Path):
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            assert page.title() == "Browser check"
            assert page.locator("table.sortable").count() == 2 + 1 + 4 + 1  # 2 boards, paired, 2x2 breakdowns, provenance
            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)])")
            assert len(images) == 5  # D: per-frame curves, PD plane (PSNR vs NIQE); tiny: curves, profile, crops
            assert all(done and w > 100 and h > 100 and src == "data:image/png;base64," for done, w, h, src in images)

            header = page.locator("table.board-D thead th", has_text="PSNR")
            assert column_values(page, "board-D", 0) == ["good", "mid", "bad", GT_METHOD]
            header.click()  # first click on a higher-is-better metric: best first
            assert column_values(page, "board-D", 1) == ["31.2", "12.4", "9.8", ""]  # numeric, empty cells last
            assert header.get_attribute("aria-sort") == "descending"
            assert page.evaluate("h => getComputedStyle(h, '::after').content", header.element_handle()) == '" ▼"'
            header.click()
            assert column_values(page, "board-D", 1) == ["9.8", "12.4", "31.2", ""]
            assert header.get_attribute("aria-sort") == "ascending"
            page.locator("table.board-D thead th", has_text="Method").click()
            assert column_values(page, "board-D", 0) == ["bad", "good", GT_METHOD, "mid"]  # text order
            assert header.get_attribute("aria-sort") is None  # only the sorted column shows an arrow

            frames_table = page.locator("table.frames-tiny")
            assert not frames_table.is_visible()
            page.locator("summary", has_text="tiny: per-frame values").click()
            assert frames_table.is_visible() and frames_table.locator("tbody tr").count() == 2 * 6 * 2
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert not errors
        finally:
            browser.close()
    assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000
