"""The report as ONE self-contained HTML file: inline CSS and JavaScript, pictures as base64 data URIs, no network.

Owns the page layout and its small sorting script: the leaderboard of every column group (value, bootstrap interval,
rank per metric, best in bold and second best underlined, rows without provenance flagged), the paired comparison
against the reference method, the pictures, per-clip and per-frame breakdowns (collapsible), the provenance table and
the commands that reproduce the page. Clicking a column header sorts its table (numbers numerically, empty cells
last; the first click on a metric puts the best first, the next reverses; arrows show the direction). A
Content-Security-Policy forbids every fetch, so the page opens the same offline. Output is a pure function of the
:class:`ReportPage`. Imports pandas and the metric metadata only.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from seeclear_bench.leaderboard import method_order
from seeclear_bench.metrics.registry import METRICS, get_metric
from seeclear_bench.report.plots import Picture, slug
from seeclear_bench.report.provenance import (
    FIELDS,
    NO_PROVENANCE,
    NOT_APPLICABLE,
    UNKNOWN,
)

MAX_FRAME_ROWS: Final = 5000
_METRIC_ORDER: Final = {name: i for i, name in enumerate(METRICS)}


@dataclass(frozen=True)
class ReportPage:
    """Everything the page shows.

    Attributes:
        title: Page heading.
        command: The command line that made the report (``None``: not recorded).
        scores: :func:`~seeclear_bench.report.ranking.score_table` output.
        groups: Column-group label -> (dataset, protocol, protocol hash).
        clips: Clip table (:func:`~seeclear_bench.metrics.tables.clip_table`).
        frames: Merged per-frame table.
        provenance: :func:`~seeclear_bench.report.provenance.provenance_table` output.
        paired: Paired comparison with ``verdict`` (:func:`~seeclear_bench.report.ranking.paired_verdicts`), or None.
        reference: The reference method of ``paired``.
        pictures: Column-group label -> pictures.
        conflicts: Lines from the merge (kept apart, never averaged).
        notes: Further lines (infinite frames, pictures that could not be drawn).
        commands: ``(what, command)`` pairs that reproduce the results and the page.
        generator: ``"seeclear-bench <version> (git <commit>)"``.
        method_note: How means, intervals and ranks were computed (one paragraph).
    """

    title: str
    command: str | None
    scores: pd.DataFrame
    groups: Mapping[str, tuple[str, str, str]]
    clips: pd.DataFrame
    frames: pd.DataFrame
    provenance: pd.DataFrame
    paired: pd.DataFrame | None = None
    reference: str | None = None
    pictures: Mapping[str, Sequence[Picture]] = field(default_factory=dict)
    conflicts: Sequence[str] = ()
    notes: Sequence[str] = ()
    commands: Sequence[tuple[str, str]] = ()
    generator: str = "seeclear-bench"
    method_note: str = ""


def render_html(page: ReportPage) -> str:
    """The complete HTML document (UTF-8 text, ending in a newline)."""
    e = html.escape
    groups = list(dict.fromkeys(page.scores["dataset"]))
    made_by = page.command or "not recorded"
    parts = [
        "<!DOCTYPE html>",
        f"<!-- Made by: {_comment(made_by)} | generator: {_comment(page.generator)} -->",
        '<html lang="en"><head><meta charset="utf-8">',
        _CSP,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{e(page.generator)}">',
        f"<title>{e(page.title)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{e(page.title)}</h1>",
        f'<p class="made-by">Made by <code>{e(made_by)}</code> with {e(page.generator)}.</p>',
        _nav(groups, page), "</header>",
    ]
    if page.conflicts:
        parts.append('<section id="conflicts" class="warn"><h2>Conflicts found while merging</h2><ul>'
                     + "".join(f"<li>{e(c)}</li>" for c in page.conflicts) + "</ul></section>")
    status = _status(page.provenance)
    parts.append('<section id="leaderboard"><h2>Leaderboard</h2>')
    parts.append('<p class="legend">Click a column header to sort. <b>Bold</b>: best, <u>underlined</u>: second '
                 "best (by the displayed value; ties share a rank); ↑ higher is better, ↓ lower is better. Each value "
                 "is shown with its bootstrap interval over clips; # is the rank per metric. "
                 f"{'⚠ marks a row whose provenance is missing or incomplete (see Provenance).' if any(status.values()) else ''}"
                 "</p>")
    for group in groups:
        parts.append(_board(page, group, status))
    parts.append("</section>")
    if page.paired is not None and len(page.paired):
        parts.append(_paired(page))
    if any(page.pictures.get(g) for g in groups):
        parts.append('<section id="pictures"><h2>Pictures</h2>')
        for group in groups:
            pictures = page.pictures.get(group, ())
            if pictures:
                parts.append(f"<h3>{e(group)}</h3>")
                parts.extend(_figure(p) for p in pictures)
        parts.append("</section>")
    if page.notes:
        parts.append('<section id="notes"><h2>Notes</h2><ul>' + "".join(f"<li>{e(n)}</li>" for n in page.notes)
                     + "</ul></section>")
    parts.append(_breakdowns(page, groups))
    parts.append(_provenance(page.provenance))
    parts.append(_reproduce(page))
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


# -- sections ------------------------------------------------------------------------------------------------------
def _nav(groups: Sequence[str], page: ReportPage) -> str:
    links = [("leaderboard", "Leaderboard")]
    if page.paired is not None and len(page.paired):
        links.append(("paired", f"Paired vs {page.reference}"))
    if any(page.pictures.get(g) for g in groups):
        links.append(("pictures", "Pictures"))
    links += [("breakdowns", "Per clip and per frame"), ("provenance", "Provenance"), ("reproduce", "Reproduce")]
    return "<nav>" + " · ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in links) + "</nav>"


def _status(provenance: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(method, dataset) -> flag text for rows whose provenance is missing or incomplete."""
    out = {}
    for row in provenance.itertuples(index=False):
        if row.status == NO_PROVENANCE:
            out[(row.method, row.dataset)] = "no provenance"
        elif str(row.status).startswith("incomplete"):
            out[(row.method, row.dataset)] = f"provenance {row.status}"
    return out


def _board(page: ReportPage, group: str, status: Mapping[tuple[str, str], str]) -> str:
    e = html.escape
    rows = page.scores[page.scores["dataset"] == group]
    metrics = sorted(set(rows["metric"]), key=lambda m: (_METRIC_ORDER.get(m, len(_METRIC_ORDER)), m))
    dataset, protocol, digest = page.groups.get(group, (group, rows["protocol"].iloc[0], rows["protocol_hash"].iloc[0]))
    aggregation = ", ".join(sorted(set(rows["aggregation"])))
    n_clips = int(rows["n_clips"].max())
    head = ['<th data-type="text">Method</th>']
    for metric in metrics:
        spec = get_metric(metric)
        first = "descending" if spec.higher_better else "ascending"
        arrow = "↑" if spec.higher_better else "↓"
        unit = f" ({spec.unit})" if spec.unit else ""
        head.append(f'<th data-first="{first}" title="{e(spec.description)}">{e(_label(metric))} {arrow}{e(unit)}</th>')
        head.append(f'<th data-first="ascending" title="rank by {e(_label(metric))}">#</th>')
    body = []
    for method in [m for m in method_order(page.scores) if m in set(rows["method"])]:
        mine = rows[rows["method"] == method].set_index("metric")
        flag = status.get((method, group))
        is_gt = bool(mine["rank"].isna().all())
        name = e(method) + (f' <span class="flag" title="{e(flag)}">⚠ {e(flag)}</span>' if flag else "")
        cells = [f'<td data-v="{e(method)}">{name}</td>']
        for metric in metrics:
            if metric not in mine.index:
                cells.append('<td data-v="">–</td><td data-v="">–</td>')
                continue
            r = mine.loc[metric]
            spec = get_metric(metric)
            mark = r["mark"]
            text = _fmt(r["value"], spec.decimals)
            shown = f"<b>{text}</b>" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text
            ci = (f'<span class="ci">[{_fmt(r["ci_low"], spec.decimals)}, {_fmt(r["ci_high"], spec.decimals)}]</span>'
                  if pd.notna(r["ci_low"]) else "")
            title = {"best": ' title="best"', "second": ' title="second best"'}.get(mark, "")
            cells.append(f'<td class="num {mark}" data-v="{_num(r["value"])}"{title}>{shown}{ci}</td>')
            rank = "" if pd.isna(r["rank"]) else str(int(r["rank"]))
            cells.append(f'<td class="num rank" data-v="{rank}">{rank or "–"}</td>')
        body.append(f'<tr{" class=gt" if is_gt else ""}>' + "".join(cells) + "</tr>")
    caption = (f"{e(group)}: protocol <code>{e(protocol)}</code> ({e(digest)}), {e(aggregation)}, up to {n_clips} clips")
    if group != dataset:
        caption += f" (dataset {e(dataset)})"
    return (f'<h3 id="board-{slug(group)}">{caption}</h3>'
            + _table(head, body, f"board board-{slug(group)}", caption=f"Leaderboard {group}"))


def _paired(page: ReportPage) -> str:
    e = html.escape
    paired = page.paired
    assert paired is not None
    level = paired["level"].iloc[0]
    head = ['<th data-type="text">Dataset</th>', '<th data-type="text">Metric</th>', '<th data-type="text">Method</th>',
            f'<th data-first="descending">Difference vs {e(str(page.reference))}</th>',
            f'<th data-type="text">{level:.0%} interval</th>', '<th data-first="descending">Clips</th>',
            '<th data-type="text">Verdict</th>']
    body = []
    for r in paired.itertuples(index=False):
        decimals = get_metric(r.metric).decimals
        verdict_class = {"better": "good", "worse": "bad"}.get(r.verdict, "")
        body.append(
            f'<tr><td>{e(r.dataset)}</td><td>{e(_label(r.metric))}</td><td>{e(r.method)}</td>'
            f'<td class="num" data-v="{_num(r.difference)}">{_fmt(r.difference, decimals, sign=True)}</td>'
            f'<td class="num">[{_fmt(r.ci_low, decimals, sign=True)}, {_fmt(r.ci_high, decimals, sign=True)}]</td>'
            f'<td class="num" data-v="{int(r.n_clips)}">{int(r.n_clips)}</td>'
            f'<td class="{verdict_class}">{e(r.verdict)}</td></tr>')
    intro = (f"<p>Each method minus <b>{e(str(page.reference))}</b>, the mean of per-clip differences, with a "
             "percentile-bootstrap interval that resamples the same clips for both methods. The verdict is better or "
             "worse when the interval excludes zero, in the metric's own direction.</p>")
    return ('<section id="paired"><h2>Paired comparison against ' + e(str(page.reference)) + "</h2>" + intro
            + _table(head, body, "paired", caption="Paired comparison") + "</section>")


def _figure(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    e = html.escape
    return (f'<figure id="fig-{e(picture.name)}"><img alt="{e(picture.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{e(picture.title)}.</b> {e(picture.caption)}</figcaption></figure>")


def _breakdowns(page: ReportPage, groups: Sequence[str]) -> str:
    e = html.escape
    parts = ['<section id="breakdowns"><h2>Per clip and per frame</h2>']
    for group in groups:
        clips = page.clips[page.clips["dataset"] == group]
        metrics = sorted(set(clips["metric"]), key=lambda m: _METRIC_ORDER.get(m, 99))
        wide = clips.pivot_table(index=["clip", "method"], columns="metric", values="value", aggfunc="first")
        head = ['<th data-type="text">Clip</th>', '<th data-type="text">Method</th>'] + [
            f'<th data-first="{"descending" if get_metric(m).higher_better else "ascending"}">{e(_label(m))}</th>'
            for m in metrics]
        body = [f"<tr><td>{e(str(clip))}</td><td>{e(str(method))}</td>"
                + "".join(_value_cell(row.get(m), m) for m in metrics) + "</tr>"
                for (clip, method), row in wide.iterrows()]
        parts.append(f"<details><summary>{e(group)}: clip means ({len(wide)} rows)</summary>"
                     + _table(head, body, f"clips clips-{slug(group)}", caption=f"Clip means {group}") + "</details>")
        frames = page.frames[page.frames["dataset"] == group]
        fwide = frames.pivot_table(index=["clip", "frame", "method"], columns="metric", values="value", aggfunc="first")
        fmetrics = sorted(fwide.columns, key=lambda m: _METRIC_ORDER.get(m, 99))
        shown = fwide.iloc[:MAX_FRAME_ROWS]
        head = ['<th data-type="text">Clip</th>', '<th data-first="ascending">Frame</th>',
                '<th data-type="text">Method</th>'] + [
            f'<th data-first="{"descending" if get_metric(m).higher_better else "ascending"}">{e(_label(m))}</th>'
            for m in fmetrics]
        body = [f'<tr><td>{e(str(clip))}</td><td class="num" data-v="{int(frame)}">{int(frame)}</td><td>{e(str(method))}</td>'
                + "".join(_value_cell(row.get(m), m) for m in fmetrics) + "</tr>"
                for (clip, frame, method), row in shown.iterrows()]
        more = (f" (the first {MAX_FRAME_ROWS} of {len(fwide)} rows; the per-frame table holds all)"
                if len(fwide) > MAX_FRAME_ROWS else f" ({len(fwide)} rows)")
        parts.append(f"<details><summary>{e(group)}: per-frame values{e(more)}</summary>"
                     + _table(head, body, f"frames frames-{slug(group)}", caption=f"Per-frame values {group}")
                     + "</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(table: pd.DataFrame) -> str:
    e = html.escape
    columns = ["method", "dataset", "protocol", *FIELDS, "source", "status"]
    labels = {"method": "Method", "dataset": "Dataset", "protocol": "Protocol", "source": "Source table",
              "status": "Status", **{k: v[0] for k, v in FIELDS.items()}}
    head = [f'<th data-type="text">{e(labels[c])}</th>' for c in columns]
    body = []
    for row in table.to_dict("records"):
        cells = []
        for c in columns:
            value = str(row[c])
            if c == "protocol":
                value = f"{row['protocol']} ({row['protocol_hash']})"
            if c == "git_commit" and len(value) > 20 and not value.startswith(("mixed", UNKNOWN)):
                sha, dirty = value.split("+", 1) if "+" in value else (value, "")
                cells.append(f'<td title="{e(value)}"><code>{e(sha[:12])}{"+" + e(dirty) if dirty else ""}</code></td>')
                continue
            css = ("unknown" if value == UNKNOWN or value.startswith("mixed") else "na" if value == NOT_APPLICABLE
                   else "bad" if value == NO_PROVENANCE else "warn-text" if value.startswith("incomplete") else "")
            cells.append(f'<td class="{css}">{e(value)}</td>' if css else f"<td>{e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    intro = (f"<p>Where each leaderboard row came from. <span class=unknown>{UNKNOWN}</span>: not recorded; "
             f"<span class=na>{NOT_APPLICABLE}</span>: does not apply (a kernel baseline loads no checkpoint); "
             "<span class=unknown>mixed</span>: the rows of one leaderboard row disagree.</p>")
    return ('<section id="provenance"><h2>Provenance</h2>' + intro
            + _table(head, body, "provenance", caption="Provenance") + "</section>")


def _reproduce(page: ReportPage) -> str:
    e = html.escape
    items = "".join(f"<li>{e(what)}<pre><code>{e(command)}</code></pre></li>" for what, command in page.commands)
    note = f"<p>{e(page.method_note)}</p>" if page.method_note else ""
    return f'<section id="reproduce"><h2>Reproduce</h2><ol>{items}</ol>{note}</section>'


# -- cells ---------------------------------------------------------------------------------------------------------
def _table(head: Iterable[str], body: Iterable[str], css: str, *, caption: str) -> str:
    return (f'<div class="scroll"><table class="sortable {css}" aria-label="{html.escape(caption)}"><thead><tr>'
            + "".join(head) + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")


def _value_cell(value: float | None, metric: str) -> str:
    if value is None or pd.isna(value):
        return '<td data-v="">–</td>'
    return f'<td class="num" data-v="{_num(value)}">{_fmt(value, get_metric(metric).decimals)}</td>'


def _fmt(value: float, decimals: int, *, sign: bool = False) -> str:
    value = float(value)
    if np.isnan(value):
        return "–"
    if np.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"


def _num(value: float) -> str:
    value = float(value)
    if np.isnan(value):
        return ""
    return "Infinity" if value == np.inf else repr(value)


def _label(metric: str) -> str:
    spec = get_metric(metric)
    return spec.display_name or spec.name.upper()


def _comment(text: str) -> str:
    """``text`` safe inside an HTML comment (HTML5 allows ``--`` there, not ``-->``, ``--!>`` or ``<!--``)."""
    return text.replace("<!--", "<!- -").replace("-->", "- ->").replace("--!>", "- -!>")


_CSP: Final = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
               "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">")
_CSS: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1b1b1b;background:#fff;
margin:0 auto;max-width:1240px;padding:0 20px 60px}
h1{font-size:1.7em;margin:.8em 0 .2em}h2{margin-top:1.8em;border-bottom:2px solid #e3e6ea;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
pre{background:#f4f5f7;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap}
nav a{color:#0b57d0;text-decoration:none}nav a:hover{text-decoration:underline}
.made-by{color:#444;margin:.2em 0 .6em}.legend{color:#444;font-size:.92em}
.scroll{overflow-x:auto;max-height:640px;overflow-y:auto;margin:.4em 0 1em}
table{border-collapse:collapse;font-size:.92em}
th,td{padding:4px 9px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
thead th{position:sticky;top:0;background:#eef1f5;cursor:pointer;user-select:none;white-space:nowrap}
thead th:hover{background:#e0e6ee}thead th::after{content:" ⇅";color:#a0a7b0;font-size:.8em}
thead th[aria-sort=ascending]::after{content:" ▲";color:#0b57d0}
thead th[aria-sort=descending]::after{content:" ▼";color:#0b57d0}
tbody tr:nth-child(even){background:#fafbfc}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best b{font-weight:700}td.best{background:#e6f4ea}td.second{background:#f3f8f4}
td.rank{color:#555}.ci{display:block;color:#6b7280;font-size:.8em}
tr.gt td{color:#666;font-style:italic}
.flag{color:#b45309;font-size:.8em;white-space:nowrap}
.warn{background:#fff7e6;border:1px solid #f0c36d;border-radius:4px;padding:4px 14px}
.unknown,.warn-text{color:#b45309;font-weight:600}.na{color:#888}.bad{color:#b91c1c;font-weight:700}
.good{color:#15803d;font-weight:600}
figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{color:#444;font-size:.9em;max-width:900px}
table.provenance td{white-space:nowrap}
details{margin:.3em 0}summary{cursor:pointer;font-weight:600;padding:3px 0}
"""

_JS: Final = """
(function(){
  function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent.trim():v;}
  function sortBy(table,col,th){
    var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    var now=th.getAttribute('aria-sort');
    var dir=now?(now==='ascending'?'descending':'ascending'):(th.getAttribute('data-first')||'ascending');
    var numeric=th.getAttribute('data-type')!=='text'&&rows.every(function(r){
      var k=key(r.cells[col]);return k===''||!isNaN(parseFloat(k));});
    rows.sort(function(a,b){
      var x=key(a.cells[col]),y=key(b.cells[col]);
      if(x===''||y===''){return x===y?0:(x===''?1:-1);}
      var c=numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y,undefined,{numeric:true});
      return dir==='ascending'?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(th.parentNode.cells,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
      th.tabIndex=0;
      th.addEventListener('click',function(){sortBy(table,col,th);});
      th.addEventListener('keydown',function(ev){
        if(ev.key==='Enter'||ev.key===' '){ev.preventDefault();sortBy(table,col,th);}});
    });
  });
})();
"""
