"""The report stage and the HTML page: every output written, a self-contained page (no network, pictures inline),
the leaderboard's marks, ranks, flags, provenance, breakdowns and reproduce commands, and the `leaderboard` command."""
from __future__ import annotations

import base64
import re
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest

from seeclear_bench import io
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.scoring import GT_METHOD
from seeclear_bench.metrics.tables import write_csv, write_parquet
from seeclear_bench.report.merge import load_results

COMMAND = "seeclear-bench leaderboard RUN outside.csv reds4.parquet --out OUT"


class Page(HTMLParser):
    """Tables (class, header texts, rows of (attrs, text)), images, details and comments of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables, self.images, self.comments, self.details = [], [], [], 0
        self._cell = None
        self._row = None
        self._head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "head": [], "rows": []})
        elif tag == "thead":
            self._head = True
        elif tag == "tbody":
            self._head = False
        elif tag == "tr" and self.tables:
            self._row = {"attrs": attrs, "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"attrs": attrs, "text": ""}
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            target = self.tables[-1]
            if self._head:
                target["head"] = [c["text"].strip() for c in self._row["cells"]]
            else:
                target["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_comment(self, data):
        self.comments.append(data)

    def table(self, css: str) -> dict:
        return next(t for t in self.tables if css in t["class"].split())


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory, make_table):
    """The tiny run (frames on disk) + an outside table without provenance + a REDS4 table with LPIPS and NIQE."""
    from pipelines.report import run

    folder = tmp_path_factory.mktemp("report")
    frames = pd.read_parquet(io.join(tiny_run, "metrics", "frames.parquet"))
    outside = frames[frames["method"] == "sharp"][["method", "dataset", "clip", "frame", "metric", "value", "protocol",
                                                  "protocol_hash"]].assign(method="outside", value=lambda d: d["value"] - 1)
    write_csv(outside, str(folder / "outside.csv"))
    prov = {"git_commit": "abc", "seeclear_bench": "0.1.0", "seed": 0, "device": "cpu", "created_at": "2026-01-01",
            "manifest_hash": "0123456789ab"}
    reds = pd.concat([
        make_table("bicubic", "REDS4", {c: {"psnr": [26.0 + i, 26.2 + i], "lpips": [0.40, 0.41], "niqe": [6.0, 6.1]}
                                        for i, c in enumerate(("000", "011", "015"))}, extra=prov),
        make_table("SeeClear", "REDS4", {c: {"psnr": [27.0 + i, 27.5 + i], "lpips": [0.20, 0.22], "niqe": [4.0, 4.2]}
                                         for i, c in enumerate(("000", "011", "015"))},
                   extra={**prov, "checkpoint_hash": "c0ffee", "preset": "tiny", "sampling_steps": 4}),
        make_table(GT_METHOD, "REDS4", {c: {"niqe": [3.0, 3.1]} for c in ("000", "011", "015")}, extra=prov),
    ], ignore_index=True)
    write_parquet(reds, str(folder / "reds4.parquet"))
    merged = load_results([tiny_run, str(folder / "outside.csv"), str(folder / "reds4.parquet")])
    out = str(folder / "board")
    text = run(merged, out, title="Tiny board", command=COMMAND, reference="bicubic", seed=0)
    html = (folder / "board" / "leaderboard.html").read_text("utf-8")
    return out, text, html, Page(html)


def test_every_output_is_written(report):
    out, text, _, _ = report
    for name in ("clips", "datasets", "intervals", "paired", "scores", "provenance"):
        for ext in ("parquet", "csv"):
            assert io.exists(io.join(out, "metrics", f"{name}.{ext}")), name
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet", "leaderboard.html"):
        assert io.exists(io.join(out, name))
    figures = sorted(io.basename(u) for u in io.glob(io.join(out, "figures", "*.png")))
    assert figures == ["crops_tiny_a.png", "frame-curves_REDS4.png", "frame-curves_tiny.png", "pd-plane_REDS4.png",
                       "temporal-profile_tiny_a.png"]
    assert text.startswith("# Tiny board\n") and f"Command: `{COMMAND}`" in text
    assert "## Provenance" in text and "**no provenance**" in text and "leaderboard.html" in text
    scores = pd.read_parquet(io.join(out, "metrics", "scores.parquet")).set_index(["dataset", "metric", "method"])
    assert scores.loc[("REDS4", "lpips", "SeeClear"), ["rank", "mark"]].tolist() == [1, "best"]


def test_page_is_self_contained_with_a_header(report):
    out, _, html, page = report
    assert html.startswith("<!DOCTYPE html>\n<!-- Made by: ")
    assert COMMAND in page.comments[0]
    assert "default-src 'none'" in html  # the Content-Security-Policy forbids every fetch
    assert not re.search(r"<link|<script[^>]+src=|@import|url\(|(src|href)=\"(https?:)?//", html)
    assert len(page.images) == 5
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix) and image["alt"]
        png = base64.b64decode(image["src"][len(prefix):])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert any(io.read_bytes(u) == png for u in io.glob(io.join(out, "figures", "*.png")))


def test_leaderboard_tables_mark_best_rank_and_flag(report):
    _, _, _, page = report
    reds = page.table("board-REDS4")
    assert reds["head"] == ["Method", "PSNR ↑ (dB)", "#", "LPIPS ↓", "#", "NIQE ↓", "#"]
    rows = {r["cells"][0]["attrs"]["data-v"]: r for r in reds["rows"]}
    assert list(rows) == ["SeeClear", "bicubic", GT_METHOD]  # best first, the unranked ground truth last
    seeclear, bicubic, gt = rows["SeeClear"]["cells"], rows["bicubic"]["cells"], rows[GT_METHOD]["cells"]
    assert "best" in seeclear[1]["attrs"]["class"].split() and seeclear[2]["text"] == "1"
    assert "second" in bicubic[1]["attrs"]["class"].split() and bicubic[2]["text"] == "2"
    assert float(seeclear[1]["attrs"]["data-v"]) == pytest.approx((27.25 + 28.25 + 29.25) / 3, abs=1e-12)
    assert seeclear[1]["text"].startswith("28.25[")  # value, then its interval
    assert rows[GT_METHOD]["attrs"].get("class") == "gt" and gt[6]["attrs"]["data-v"] == "" and gt[1]["text"] == "–"
    tiny = page.table("board-tiny")
    flagged = {r["cells"][0]["attrs"]["data-v"]: r["cells"][0]["text"] for r in tiny["rows"]}
    assert "⚠ no provenance" in flagged["outside"] and "⚠" not in flagged["bicubic"]
    assert "⚠ provenance incomplete: preset, steps" in flagged["sharp"]  # a checkpoint, but no preset or steps


def test_paired_provenance_breakdowns_and_commands(report):
    _, _, html, page = report
    paired = page.table("paired")
    verdicts = {(r["cells"][0]["text"], r["cells"][2]["text"], r["cells"][1]["text"]): r["cells"][6]["text"]
                for r in paired["rows"]}
    assert verdicts[("REDS4", "SeeClear", "LPIPS")] == "better"  # lower LPIPS than bicubic on every clip
    provenance = {(r["cells"][0]["text"], r["cells"][1]["text"]): [c["text"] for c in r["cells"]]
                  for r in page.table("provenance")["rows"]}
    head = page.table("provenance")["head"]
    col = {name: head.index(name) for name in ("checkpoint", "preset", "steps", "git commit", "Status", "data manifest")}
    assert provenance[("outside", "tiny")][col["Status"]] == "no provenance"
    assert provenance[("bicubic", "REDS4")][col["checkpoint"]] == "n/a"
    assert provenance[("SeeClear", "REDS4")][col["checkpoint"]] == "c0ffee"
    assert provenance[("SeeClear", "REDS4")][col["steps"]] == "4"
    assert provenance[("sharp", "tiny")][col["checkpoint"]] == "cksha"  # from the run's upscale record
    assert provenance[("sharp", "tiny")][col["data manifest"]] != "unknown"
    assert page.details == 4
    frames_tiny = page.table("frames-tiny")
    assert len(frames_tiny["rows"]) == 2 * 6 * 3  # clips x frames x methods
    assert "Rebuild this page from the per-frame tables" in html and "seeclear-bench leaderboard" in html
    assert f"{COMMAND}</code>" in html and "seeclear-bench run SPEC.toml --out" in html


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeclear_bench.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.slow  # two CLI processes, about 3 s
def test_leaderboard_command_keeps_protocols_apart_and_refuses_duplicates(tmp_path, make_table):
    rgb, y = get_protocol("basicsr-reds4-rgb"), get_protocol("basicsr-vid4-y")
    write_parquet(make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2]}, "011": {"psnr": [25.0, 25.2]}},
                             protocol=rgb), str(tmp_path / "rgb.parquet"))
    write_csv(make_table("bicubic", "REDS4", {"000": {"psnr": [27.0, 27.2]}, "011": {"psnr": [26.0, 26.2]}},
                         protocol=y), str(tmp_path / "y.csv"))
    res = cli("leaderboard", str(tmp_path / "rgb.parquet"), str(tmp_path / "y.csv"), "--out", str(tmp_path / "b"),
              "--no-html")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "b" / "leaderboard.md").read_text()
    assert f"REDS4 · {rgb.name} ({rgb.hash}) (PSNR↑)" in text and f"REDS4 · {y.name} ({y.hash}) (PSNR↑)" in text
    assert "| bicubic | 25.60 | 26.60 |" in text and "never averaged" in text
    assert not (tmp_path / "b" / "leaderboard.html").exists()
    res = cli("leaderboard", str(tmp_path / "rgb.parquet"), str(tmp_path / "rgb.parquet"), "--out", str(tmp_path / "c"))
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: {tmp_path}/rgb.parquet row 0 repeats {tmp_path}/rgb.parquet row 0 "
                                  "(method='bicubic', dataset='REDS4', clip='000', frame=0, metric='psnr') with the "
                                  "same value; load each run once, or pass --merge-identical to keep one copy")
    assert not (tmp_path / "c").exists()
