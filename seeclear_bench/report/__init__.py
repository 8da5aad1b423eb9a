"""Reports people read: merged result tables, provenance per row, pictures and one self-contained HTML page.

Modules: :mod:`~seeclear_bench.report.merge` (many result tables -> one, with the merging rules),
:mod:`~seeclear_bench.report.provenance` (where each number came from), :mod:`~seeclear_bench.report.ranking`
(ranks, best/second marks, paired verdicts), :mod:`~seeclear_bench.report.frames` (the frames pictures are drawn from),
:mod:`~seeclear_bench.report.plots` (matplotlib figures as PNG bytes), :mod:`~seeclear_bench.report.html` (the page)
and :mod:`~seeclear_bench.report.build` (which pictures a report draws, the reproduce commands, the files written).
Importing this package imports nothing heavy: pandas at most in the submodules, matplotlib only inside plot functions.
"""
from __future__ import annotations
