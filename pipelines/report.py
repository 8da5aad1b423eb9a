"""Report stage: per-frame table -> per-clip and per-dataset tables and the leaderboard (Markdown, CSV, Parquet)."""
from __future__ import annotations

import pandas as pd

from seeclear_bench import io


def run(frames: pd.DataFrame, out_url: str, *, title: str, command: str | None = None) -> str:
    """Write ``clips``, ``datasets`` and ``leaderboard`` tables under ``out_url``; returns the Markdown text."""
    from seeclear_bench.leaderboard import build_leaderboard, leaderboard_markdown
    from seeclear_bench.metrics.tables import clip_table, dataset_table, save_table

    clips = clip_table(frames)
    save_table(clips, io.join(out_url, "metrics", "clips"))
    save_table(dataset_table(clips, frames), io.join(out_url, "metrics", "datasets"))
    board = build_leaderboard(frames)
    save_table(_flatten(board) if isinstance(board.columns, pd.MultiIndex) else board.reset_index(), io.join(out_url, "leaderboard"))
    text = leaderboard_markdown(board, title=title, command=command).rstrip("\n") + "\n"
    io.write_bytes(io.join(out_url, "leaderboard.md"), text.encode("utf-8"))
    return text


def _flatten(board: pd.DataFrame) -> pd.DataFrame:
    flat = board.copy()
    flat.columns = ["/".join(map(str, col)) for col in flat.columns]
    return flat.reset_index()
