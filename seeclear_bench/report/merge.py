"""Merging per-frame result tables from any number of runs and URLs into one table a leaderboard is built from.

Owns the merging rules:

* every table is validated on its own first, so an error names the file and the row (missing columns, no rows,
  unknown metrics, duplicates within the file);
* rows are grouped by dataset *and* protocol: when one dataset was scored under several protocols, each protocol's
  rows become their own column group (``"REDS4 · basicsr-reds4-y (61716dfe32fe)"``); they never share a column and
  are never averaged; it is reported as a conflict unless every table holding the dataset scored it under all of
  them (the protocols were asked for together);
* the same (method, dataset, clip, frame, metric) under one protocol in two tables is refused, naming both files
  and rows (``allow_identical=True`` keeps one copy when the two values are exactly equal, and reports it);
* one metric computed by two variants (different ``metric_hash``) in one column group is refused, as is a column
  whose methods were scored on different clips or frames (their means would not be comparable);
* one method whose rows in a column group come from tables with different provenance (another checkpoint, commit,
  seed...) is split into one leaderboard row per provenance, labelled by the first field that differs, and reported;
* a row without any provenance is kept and marked (``has_provenance`` False).

Imports pandas and the metric tables only; never torch, ray or matplotlib.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.tables import KEY_COLUMNS, read_table, validate_frames_df
from seeclear_bench.report.provenance import (
    fill_from_run,
    has_provenance,
    normalise_columns,
)

RUN_TABLES: Final = ("metrics/frames.parquet", "metrics/frames.csv", "frames.parquet", "frames.csv")
# provenance fields that make two tables' rows of one method different results (checked in this order)
IDENTITY_FIELDS: Final = (
    "checkpoint_hash", "preset", "sampling_steps", "seed", "degradation", "scale", "spec_hash", "git_commit",
)
HELPER_COLUMNS: Final = ("source", "source_row", "has_provenance")


@dataclass(frozen=True)
class Merged:
    """Merged per-frame rows and what the merge found.

    Attributes:
        frames: Valid per-frame table; ``dataset`` holds the column-group label (the dataset name itself unless the
            dataset was scored under several protocols), ``method`` the leaderboard row label, plus ``source`` (the
            table's URL), ``source_row`` (the row in it) and ``has_provenance``.
        groups: Column-group label -> (dataset, protocol name, protocol hash).
        sources: The tables merged, in the order given.
        runs: Run folders among the sources (they hold predictions and shards to draw pictures from).
        conflicts: One line per conflict found and how it was resolved (kept apart, never averaged).
    """

    frames: pd.DataFrame
    groups: dict[str, tuple[str, str, str]]
    sources: tuple[str, ...]
    runs: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    def results(self) -> pd.DataFrame:
        """The per-frame table for the aggregation functions: without ``source_row`` (``source`` and ``has_provenance``
        are carried along as provenance columns)."""
        return self.frames.drop(columns=[c for c in ("source_row",) if c in self.frames.columns])


def resolve_table(url: str) -> tuple[str, str | None]:
    """The per-frame table behind ``url`` and the run folder it belongs to.

    ``url`` is a ``.parquet``/``.csv`` table or a folder holding one of :data:`RUN_TABLES`. The run folder is the
    folder above ``metrics/`` when it holds a ``spec.json`` (``seeclear-bench run`` output), else ``None``.

    Raises:
        SeeClearError: A folder holding no per-frame table.
    """
    url = str(url).rstrip("/")
    if url.endswith((".parquet", ".csv")):
        table = url
    else:
        found = [io.join(url, name) for name in RUN_TABLES if io.exists(io.join(url, name))]
        if not found:
            raise SeeClearError(
                f"{url}: no per-frame table; expected a .parquet/.csv file or a folder holding one of {list(RUN_TABLES)}"
            )
        table = found[0]
    folder = table.rsplit("/", 1)[0] if "/" in table else "."
    run = folder.rsplit("/", 1)[0] if folder.endswith("/metrics") or folder == "metrics" else None
    if run is not None and not io.exists(io.join(run, "spec.json")):
        run = None
    return table, run


def load_results(urls: Sequence[str], *, allow_identical: bool = False) -> Merged:
    """Read, validate and merge per-frame tables (files or run folders, any fsspec URL).

    Provenance missing from a run's table (date, data manifest hash, checkpoint from the upscale records) is filled
    from its run folder. See :func:`merge_results` for the rules.

    Raises:
        SeeClearError: No URLs, an unreadable table, or any refusal of :func:`merge_results` (naming file and row).
    """
    urls = [str(u) for u in ([urls] if isinstance(urls, str) else urls)]
    if not urls:
        raise SeeClearError("no result tables given; pass frames.parquet/.csv files or run folders")
    tables, runs = [], []
    for url in urls:
        table_url, run = resolve_table(url)
        df = read_table(table_url)
        if run is not None:
            df = fill_from_run(df, run)
            runs.append(run)
        tables.append((table_url, df))
    merged = merge_results(tables, allow_identical=allow_identical)
    return Merged(merged.frames, merged.groups, merged.sources, tuple(dict.fromkeys(runs)), merged.conflicts)


def merge_results(tables: Sequence[tuple[str, pd.DataFrame]], *, allow_identical: bool = False) -> Merged:
    """Merge per-frame tables under the rules of this module.

    Args:
        tables: ``(source, table)`` pairs; ``source`` (a URL or description) names the table in messages.
        allow_identical: Keep one copy of a row that two tables hold with exactly the same value (e.g. the
            ``bicubic`` baseline in two runs) instead of refusing; each such overlap is reported.

    Returns:
        The :class:`Merged` rows, column groups and conflicts.

    Raises:
        SeeClearError: Naming the file and row: no tables, an invalid table, a duplicate row, two metric variants
            in one column, or methods of one column scored on different clips or frames.
    """
    if not tables:
        raise SeeClearError("no result tables given; pass at least one frames.parquet/.csv or run folder")
    parts = []
    for source, df in tables:
        if not isinstance(df, pd.DataFrame):
            raise SeeClearError(f"{source}: expected a per-frame table (pandas DataFrame), got {type(df).__name__}")
        validate_frames_df(df, source)
        part = normalise_columns(df.reset_index(drop=True).drop(columns=[c for c in HELPER_COLUMNS if c in df.columns]))
        part["source"], part["source_row"] = str(source), np.arange(len(part), dtype=np.int64)
        parts.append(part)
    frames = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    frames["has_provenance"] = has_provenance(frames).to_numpy()
    conflicts: list[str] = []
    frames = _drop_duplicates(frames, allow_identical, conflicts)
    frames, groups = _column_groups(frames, conflicts)
    _check_metric_variants(frames)
    frames = _split_methods(frames, conflicts)
    _check_same_frames(frames)
    frames = frames.sort_values(["method", "dataset", "clip", "frame", "metric"], kind="stable").reset_index(drop=True)
    return Merged(frames, groups, tuple(str(s) for s, _ in tables), (), tuple(conflicts))


def _where(row: pd.Series | Any) -> str:
    return f"{row['source']} row {int(row['source_row'])}"


def _key_text(row: pd.Series) -> str:
    return ", ".join(f"{k}={_py(row[k])!r}" for k in KEY_COLUMNS)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _drop_duplicates(frames: pd.DataFrame, allow_identical: bool, conflicts: list[str]) -> pd.DataFrame:
    """Refuse a (method, dataset, clip, frame, metric, protocol) that two tables hold (within one, validation did)."""
    key = [*KEY_COLUMNS, "protocol_hash"]
    repeated = frames.duplicated(key, keep=False).to_numpy()
    if not repeated.any():
        return frames
    dup = frames[repeated]
    same_value = dup.groupby(key, sort=False)["value"].transform(lambda v: v.nunique(dropna=False) == 1).to_numpy()
    if not allow_identical or not same_value.all():
        rows = dup[~same_value] if not same_value.all() else dup
        first = rows.iloc[0]
        other = rows[(rows[key] == first[key]).all(axis=1)].iloc[1]
        verdict = (f"with different values {first['value']!r} and {other['value']!r}" if first["value"] != other["value"]
                   else "with the same value")
        fix = ("load each run once, or rename the method in one table" if first["value"] != other["value"]
               else "load each run once, or pass --merge-identical to keep one copy")
        raise SeeClearError(f"{_where(other)} repeats {_where(first)} ({_key_text(first)}) {verdict}; {fix}")
    kept = ~frames.duplicated(key, keep="first").to_numpy()
    for (method, dataset), group in dup.groupby(["method", "dataset"], sort=True):
        sources = sorted(set(group["source"]))
        conflicts.append(f"{method} on {dataset}: {len(group) - group[key].drop_duplicates().shape[0]} rows repeated "
                         f"with identical values in {', '.join(sources)}; kept the copy from {sources[0]}")
    return frames[kept].reset_index(drop=True)


def _column_groups(frames: pd.DataFrame, conflicts: list[str]) -> tuple[pd.DataFrame, dict[str, tuple[str, str, str]]]:
    """Label each (dataset, protocol, protocol hash) as its own column group when a dataset has several."""
    used = frames[["dataset", "protocol", "protocol_hash"]].drop_duplicates().sort_values(["dataset", "protocol", "protocol_hash"])
    groups: dict[str, tuple[str, str, str]] = {}
    labels: dict[tuple[str, str, str], str] = {}
    for dataset, rows in used.groupby("dataset", sort=True):
        pairs = list(rows[["protocol", "protocol_hash"]].itertuples(index=False, name=None))
        for name, digest in pairs:
            label = dataset if len(pairs) == 1 else f"{dataset} · {name} ({digest})"
            labels[(dataset, name, digest)] = label
            groups[label] = (dataset, name, digest)
        if len(pairs) > 1 and not _asked_together(frames[frames["dataset"] == dataset], len(pairs)):
            described = []
            for name, digest in pairs:
                sources = sorted(set(frames.loc[(frames["dataset"] == dataset) & (frames["protocol_hash"] == digest), "source"]))
                described.append(f"{name!r} ({digest}) in {', '.join(sources)}")
            conflicts.append(f"{dataset} was scored under {len(pairs)} protocols: {'; '.join(described)}; each protocol "
                             "has its own columns, never averaged together")
    if any(label != key[0] for key, label in labels.items()):
        index = pd.MultiIndex.from_frame(frames[["dataset", "protocol", "protocol_hash"]])
        frames = frames.assign(dataset=[labels[k] for k in index])
    return frames, groups


def _asked_together(rows: pd.DataFrame, n_protocols: int) -> bool:
    """Whether every table holding this dataset scored it under all of its protocols (one evaluation asked for them,
    e.g. ``protocols = { Vid4 = ["basicsr-vid4-y", "basicsr-reds4-rgb"] }``), rather than tables from different
    evaluations each bringing their own."""
    per_source = rows.groupby("source", sort=False)["protocol_hash"].nunique()
    return bool((per_source == n_protocols).all())


def _check_metric_variants(frames: pd.DataFrame) -> None:
    if "metric_hash" not in frames.columns:
        return
    for (dataset, metric), rows in frames.groupby(["dataset", "metric"], sort=True):
        variants = rows.dropna(subset=["metric_hash"]).drop_duplicates("metric_hash")
        if len(variants) > 1:
            a, b = variants.iloc[0], variants.iloc[1]
            raise SeeClearError(
                f"{dataset} {metric}: {_where(a)} was computed by metric variant {a['metric_hash']} but {_where(b)} by "
                f"{b['metric_hash']} (different parameters or weight files); rescore both with one variant"
            )


def _split_methods(frames: pd.DataFrame, conflicts: list[str]) -> pd.DataFrame:
    """Give a method one leaderboard row per provenance when its rows in a column group come from differing tables."""
    fields = [f for f in IDENTITY_FIELDS if f in frames.columns]
    relabel: dict[tuple[str, str, str], str] = {}
    for (method, dataset), rows in frames.groupby(["method", "dataset"], sort=True):
        sources = sorted(set(rows["source"]))
        if len(sources) < 2 or not fields:
            continue
        per_source = {s: tuple(_distinct_text(rows.loc[rows["source"] == s, f]) for f in fields) for s in sources}
        if len(set(per_source.values())) < 2:
            continue  # one result split across tables (e.g. evaluated in parts): same provenance, one row
        differing = [i for i in range(len(fields)) if len({v[i] for v in per_source.values()}) > 1]
        unique = [i for i in differing if len({v[i] for v in per_source.values()}) == len(sources)]
        labels = {}
        for n, source in enumerate(sources, start=1):
            if unique:
                field = fields[unique[0]]
                labels[source] = f"{method} [{field}={per_source[source][unique[0]][:12]}]"
            else:
                labels[source] = f"{method} [table {n}]"
            relabel[(method, dataset, source)] = labels[source]
        field_names = ", ".join(fields[i] for i in differing)
        conflicts.append(f"{method} on {dataset} comes from {len(sources)} tables whose provenance differs ({field_names}): "
                         + "; ".join(f"{labels[s]} from {s}" for s in sources) + "; kept as separate rows, never averaged")
    if relabel:
        keys = zip(frames["method"], frames["dataset"], frames["source"])
        frames = frames.assign(method=[relabel.get(k, k[0]) for k in keys])
    return frames


def _distinct_text(values: pd.Series) -> str:
    return "|".join(sorted({str(_py(v)) for v in values.dropna()}))


def _check_same_frames(frames: pd.DataFrame) -> None:
    for (dataset, metric), rows in frames.groupby(["dataset", "metric"], sort=True):
        sets = {method: set(zip(g["clip"], g["frame"])) for method, g in rows.groupby("method", sort=True)}
        reference, frames_ref = max(sets.items(), key=lambda item: (len(item[1]), item[0]))
        for method, got in sets.items():
            if got != frames_ref:
                clips = sorted({c for c, _ in got ^ frames_ref})
                where = ", ".join(sorted(set(rows.loc[rows["method"] == method, "source"])))
                ref_where = ", ".join(sorted(set(rows.loc[rows["method"] == reference, "source"])))
                raise SeeClearError(
                    f"{dataset} {metric}: {method} ({where}) was scored on {len(got)} frames but {reference} "
                    f"({ref_where}) on {len(frames_ref)} (clips differing: {clips[:5]}); means over different frames "
                    "are not comparable, score every method on the same clips and frames"
                )
