"""The Markdown leaderboard writes names from data as text: no HTML, emphasis, links or table breaks get through."""
from __future__ import annotations

import html
import re

import pandas as pd
import pytest
from markdown_it import MarkdownIt  # a CommonMark renderer: a test dependency (pyproject's `test` extra)

from seeclear_bench.leaderboard import build_leaderboard, escape_markdown, leaderboard_markdown
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.tables import frame_rows

REDS = get_protocol("basicsr-reds4-rgb")
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MARKUP = "# *bold* _it_ [link](http://x) `code` ~~s~~ a|b \\ & 1."


def _board(methods: list[str], dataset: str = "D") -> pd.DataFrame:
    return build_leaderboard(pd.concat(
        [frame_rows(method=m, dataset=dataset, clip="c", values={"psnr": [30.0 - i]}, protocol=REDS)
         for i, m in enumerate(methods)],
        ignore_index=True,
    ))


def _render(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def test_hostile_names_render_as_text_not_html() -> None:
    text = leaderboard_markdown(_board([SCRIPT, IMG, "bicubic"], dataset=IMG), title=f"board {SCRIPT}",
                                command=f"seeclear-bench report {IMG}")
    data_lines = [line for line in text.splitlines() if "<u>" not in line]  # the board's own <u> marks are ours
    assert not any("<script" in line or "<img" in line for line in data_lines[:3] + data_lines[4:]), text
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; |" in text
    assert "# board &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert f"Command: `seeclear-bench report {IMG}`" in text  # a code span shows it verbatim and is never HTML
    rendered = _render(text)
    assert "<script" not in rendered and "<img" not in rendered, rendered
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rendered)
    assert html.escape(SCRIPT, quote=False) in cells and html.escape(IMG, quote=False) in cells
    assert f"<h1>board {html.escape(SCRIPT, quote=False)}</h1>" in rendered


def test_markdown_characters_in_a_name_stay_literal_and_in_their_cell() -> None:
    text = leaderboard_markdown(_board([MARKUP, "line\nbreak"]), title="t", command=None)
    row = next(line for line in text.splitlines() if "bold" in line)
    assert row.count(" | ") == 1  # method cell | value cell: the name's '|' does not open a third column
    assert "\\*bold\\*" in row and "\\_it\\_" in row and "\\[link\\]" in row and "&amp;" in row
    assert "| line break |" in text  # a newline would end the table row
    rendered = _render(text)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rendered)
    assert html.escape(MARKUP, quote=False) in cells, cells
    body = rendered[rendered.index("<tbody>"):]
    assert not re.search(r"<(em|a|code|del|h1)\b", body), body


@pytest.mark.parametrize("name", [SCRIPT, IMG, MARKUP, "- item", "+ x", "12. ordinal", "3) x", "&lt;", "plain-name_1"])
def test_escape_markdown_round_trips_through_a_renderer(name: str) -> None:
    escaped = escape_markdown(name)
    assert "<" not in escaped and ">" not in escaped
    rendered = _render(f"- {escaped}, noted")  # a list item: block markers at the start must stay text
    assert rendered == f"<ul>\n<li>{html.escape(name, quote=False)}, noted</li>\n</ul>\n"
