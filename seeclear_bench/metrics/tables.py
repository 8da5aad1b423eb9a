"""Results tables: the long per-frame schema, its validation, clip and dataset aggregation, and table files.

The per-frame table is the single source of truth; clip and dataset tables are pure functions of it. Schema, one row
per (method, dataset, clip, frame, metric):

``method, dataset, clip, frame, metric, value, protocol, protocol_hash`` plus any provenance columns (git sha, device,
shard, ...), which are carried through untouched. ``value`` keeps ``inf`` for identical frames; the protocol's
``inf_policy`` decides what a mean does with them, and every mean is reported with ``n_frames`` and ``n_inf``.

Files are written atomically through :mod:`seeclear_bench.io` (serialised to memory, then one write), as Parquet
and/or CSV. This module imports pandas and numpy only; never torch, ray or pyiqa.
"""
from __future__ import annotations

import io as _bytes_io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError, did_you_mean
from seeclear_bench.metrics.protocols import Protocol, resolve_protocol
from seeclear_bench.metrics.registry import METRICS

KEY_COLUMNS: Final = ("method", "dataset", "clip", "frame", "metric")
FRAME_COLUMNS: Final = (*KEY_COLUMNS, "value", "protocol", "protocol_hash")
CLIP_COLUMNS: Final = ("method", "dataset", "clip", "metric", "value", "n_frames", "n_inf", "protocol", "protocol_hash")
DATASET_COLUMNS: Final = (
    "method", "dataset", "metric", "value", "n_clips", "n_frames", "n_inf", "protocol", "protocol_hash", "aggregation",
)
STRING_COLUMNS: Final = ("method", "dataset", "clip", "metric", "protocol", "protocol_hash")
TABLE_FORMATS: Final = ("parquet", "csv")
_NUMERIC_COLUMNS: Final = ("frame", "value", "n_frames", "n_inf", "n_clips")


def frame_rows(
    *,
    method: str,
    dataset: str,
    clip: str,
    values: Mapping[str, Sequence[float] | np.ndarray],
    protocol: Protocol,
    frames: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Build the per-frame rows of one clip.

    Args:
        method: Method name.
        dataset: Dataset name, e.g. ``"REDS4"``.
        clip: Clip id as a string (``"000"``, not ``0``: CSV and Parquet must agree).
        values: ``{metric: (s,) values}``, as returned by :func:`~seeclear_bench.metrics.registry.compute_frame_metrics`.
        protocol: The protocol the values were computed under.
        frames: The ``s`` frame indices the values belong to; pass ``protocol.frame_indices(t)``. Default ``0..s-1``.
        extra: Provenance columns with one value for every row (e.g. ``{"git_sha": ..., "device": ...}``).

    Returns:
        Rows in schema order (metric-major, then frame), provenance columns last.
    """
    for name, value in (("method", method), ("dataset", dataset), ("clip", clip)):
        if not isinstance(value, str) or not value:
            raise SeeClearError(f"{name} must be a non-empty string, got {value!r}; e.g. clip='000' rather than 0")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(FRAME_COLUMNS))
    if clash:
        raise SeeClearError(f"provenance columns {clash} clash with the per-frame schema {list(FRAME_COLUMNS)}; rename them")
    parts = []
    for metric, metric_values in values.items():
        array = np.asarray(metric_values, dtype=np.float64).reshape(-1)
        index = list(range(len(array))) if frames is None else [int(f) for f in frames]
        if len(index) != len(array):
            raise SeeClearError(
                f"{dataset}/{clip}: metric {metric!r} has {len(array)} values but {len(index)} frame indices were given"
            )
        parts.append(pd.DataFrame({
            "method": method, "dataset": dataset, "clip": clip, "frame": np.asarray(index, dtype=np.int64),
            "metric": metric, "value": array, "protocol": protocol.name, "protocol_hash": protocol.hash,
        }))
    if not parts:
        raise SeeClearError(f"{dataset}/{clip}: values holds no metric; pass at least one metric's values")
    rows = pd.concat(parts, ignore_index=True)
    for key, value in extra.items():
        rows[key] = value
    return rows


def validate_frames_df(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a per-frame table against the schema; returns it unchanged.

    Args:
        df: The table.
        source: Where it came from (a file URL or a description), used in error messages.

    Raises:
        SeeClearError: Missing columns, empty table, non-string ids, non-integer or negative frames, NaN or ``-inf``
            values, unknown metrics, or duplicate (method, dataset, clip, frame, metric) rows under one protocol;
            the message names ``source`` and the first offending row.
    """
    missing = [c for c in FRAME_COLUMNS if c not in df.columns]
    if missing:
        raise SeeClearError(
            f"{source}: missing columns {missing}; a per-frame table needs {list(FRAME_COLUMNS)}, found {list(df.columns)}"
        )
    if df.empty:
        raise SeeClearError(f"{source}: the per-frame table has no rows")
    for column in STRING_COLUMNS:
        values = df[column]
        bad = values.isna().to_numpy() | ~values.map(lambda v: isinstance(v, str) and v != "").to_numpy(dtype=bool)
        if bad.any():
            row = df.index[np.argmax(bad)]
            raise SeeClearError(
                f"{source}: row {row} has {column}={_py(df.at[row, column])!r}, expected a non-empty string "
                f"(ids such as clip '000' are strings)"
            )
    if not pd.api.types.is_integer_dtype(df["frame"]) or (df["frame"] < 0).any():
        if pd.api.types.is_integer_dtype(df["frame"]):
            row = df.index[np.argmax((df["frame"] < 0).to_numpy())]
        else:
            row = df.index[0]
        raise SeeClearError(
            f"{source}: column 'frame' must hold integer indices >= 0, found {_py(df.at[row, 'frame'])!r} "
            f"(dtype {df['frame'].dtype}) at row {row}"
        )
    if not pd.api.types.is_float_dtype(df["value"]) and not pd.api.types.is_integer_dtype(df["value"]):
        raise SeeClearError(f"{source}: column 'value' must be numeric, found dtype {df['value'].dtype}")
    value = df["value"].to_numpy(dtype=np.float64)
    bad = np.isnan(value) | (value == -np.inf)
    if bad.any():
        row = df.index[np.argmax(bad)]
        raise SeeClearError(
            f"{source}: row {row} ({_describe(df, row)}) has value {value[np.argmax(bad)]}; a metric value must be a "
            "number or +inf (identical frames), recompute this frame"
        )
    unknown = ~df["metric"].isin(list(METRICS)).to_numpy()
    if unknown.any():
        row = df.index[np.argmax(unknown)]
        name = str(df.at[row, "metric"])
        raise SeeClearError(
            f"{source}: row {row} has unknown metric {name!r}; expected one of {sorted(METRICS)}{did_you_mean(name, METRICS)}"
        )
    duplicated = df.duplicated([*KEY_COLUMNS, "protocol_hash"], keep="first").to_numpy()
    if duplicated.any():
        row = df.index[np.argmax(duplicated)]
        raise SeeClearError(
            f"{source}: row {row} repeats ({_describe(df, row)}); each (method, dataset, clip, frame, metric) must "
            "appear once per protocol, drop the duplicate run or rename its method"
        )
    return df


def clip_table(
    frames_df: pd.DataFrame, protocol: Protocol | None = None, *, protocols: Iterable[Protocol] = ()
) -> pd.DataFrame:
    """Mean of each metric within each clip, honouring the protocol's ``inf_policy``.

    Args:
        frames_df: Per-frame table (validated here).
        protocol: The protocol every row must carry. ``None``: each row's own protocol, looked up by name and hash
            among the presets and ``protocols`` (a table may mix protocols across datasets).
        protocols: Custom (non-preset) protocols the rows may use.

    Returns:
        One row per (method, dataset, clip, metric): ``value`` (the mean), ``n_frames`` (frames scored),
        ``n_inf`` (of which infinite: capped at ``psnr_cap`` under ``"cap"``, left out of the mean under
        ``"exclude"``), ``protocol``, ``protocol_hash``, then the provenance columns that are constant within the clip.
        Sorted by method, dataset, clip, metric.

    Raises:
        SeeClearError: An invalid table, rows under another protocol than ``protocol``, an unknown protocol hash, or a
            clip whose frames are all infinite under ``"exclude"`` (the mean would be NaN).
    """
    validate_frames_df(frames_df, "per-frame table")
    parts = []
    for proto, rows in _split_by_protocol(frames_df, protocol, protocols):
        value = rows["value"].to_numpy(dtype=np.float64)
        is_inf = np.isinf(value)
        used = np.where(is_inf, proto.psnr_cap if proto.inf_policy == "cap" else np.nan, value)
        work = rows.assign(value=used, n_frames=1, n_inf=is_inf.astype(np.int64))
        grouped = work.groupby(["method", "dataset", "clip", "metric", "protocol", "protocol_hash"], sort=True)
        table = grouped.agg(value=("value", "mean"), n_frames=("n_frames", "sum"), n_inf=("n_inf", "sum")).reset_index()
        empty = table["value"].isna().to_numpy()
        if empty.any():
            bad = table.iloc[int(np.argmax(empty))]
            raise SeeClearError(
                f"{bad['method']} on {bad['dataset']}/{bad['clip']}: all {bad['n_frames']} {bad['metric']} values are "
                f"inf (identical to ground truth) and protocol {proto.name!r} excludes inf frames, so the clip mean is "
                "undefined; use a protocol with inf_policy='cap'"
            )
        parts.append(_attach_constant_extras(table, grouped, rows.columns, FRAME_COLUMNS))
    return _finish(pd.concat(parts, ignore_index=True), CLIP_COLUMNS, ["method", "dataset", "clip", "metric"])


def dataset_table(
    clip_df: pd.DataFrame, frames_df: pd.DataFrame | None = None, *, protocols: Iterable[Protocol] = ()
) -> pd.DataFrame:
    """Dataset-level means under each row's protocol ``aggregation``.

    ``"clip-mean"`` averages the clip means (BasicSR, mmagic). ``"frame-mean"`` averages all frames of the dataset
    pooled together (TecoGAN's FrameAvg): from ``frames_df`` when given, otherwise from the clip means weighted by the
    frames that entered them (``n_frames``, less ``n_inf`` under ``"exclude"``), which is the same number.

    Args:
        clip_df: Output of :func:`clip_table`.
        frames_df: The per-frame table ``clip_df`` came from (optional, used for ``"frame-mean"``).
        protocols: Custom (non-preset) protocols the rows may use.

    Returns:
        One row per (method, dataset, metric): ``value``, ``n_clips``, ``n_frames``, ``n_inf``, ``protocol``,
        ``protocol_hash``, ``aggregation``, then provenance columns constant within the group.
    """
    missing = [c for c in CLIP_COLUMNS if c not in clip_df.columns]
    if missing:
        raise SeeClearError(f"clip table: missing columns {missing}; build it with clip_table(frames)")
    keys = ["method", "dataset", "metric", "protocol", "protocol_hash"]
    parts = []
    for proto, clips in _split_by_protocol(clip_df, None, protocols):
        n_used = clips["n_frames"] - (clips["n_inf"] if proto.inf_policy == "exclude" else 0)
        work = clips.assign(n_clips=1, weighted=clips["value"] * n_used, n_used=n_used)
        grouped = work.groupby(keys, sort=True)
        table = grouped.agg(
            value=("value", "mean"), n_clips=("n_clips", "sum"), n_frames=("n_frames", "sum"), n_inf=("n_inf", "sum"),
            weighted=("weighted", "sum"), n_used=("n_used", "sum"),
        ).reset_index()
        if proto.aggregation == "frame-mean":
            if frames_df is not None:
                table["value"] = _frame_means(frames_df, proto, table[keys])
            else:
                table["value"] = table["weighted"] / table["n_used"]
        table["aggregation"] = proto.aggregation
        table = _attach_constant_extras(table.drop(columns=["weighted", "n_used"]), grouped, clips.columns, CLIP_COLUMNS)
        parts.append(table)
    return _finish(pd.concat(parts, ignore_index=True), DATASET_COLUMNS, ["method", "dataset", "metric"])


def summary_text(datasets_df: pd.DataFrame, *, width: int = 100) -> str:
    """A terminal-sized view of a :func:`dataset_table`: one line per (method, dataset, protocol) with the clip count
    and each metric's dataset value at its leaderboard precision, columns wrapped to ``width``; a protocol with a
    metric scored under another protocol (:func:`~seeclear_bench.metrics.registry.same_values_under`) shows ``-``."""
    from seeclear_bench.metrics.registry import METRICS, get_metric

    order = {name: i for i, name in enumerate(METRICS)}
    metrics = sorted(datasets_df["metric"].unique(), key=lambda m: (order.get(m, len(order)), m))
    keys = ["method", "dataset", "protocol"]
    table = datasets_df.pivot_table(index=keys, columns="metric", values="value", aggfunc="first", sort=True)
    clips = datasets_df.groupby(keys, sort=True)["n_clips"].max()
    out = pd.DataFrame(index=table.index)
    out["clips"] = clips.reindex(table.index).astype(int)
    for metric in metrics:
        spec = get_metric(metric)
        label = f"{spec.display_name or metric.upper()}{'↑' if spec.higher_better else '↓'}"
        out[label] = [("-" if pd.isna(v) else f"{v:.{spec.decimals}f}") for v in table[metric]]
    return out.reset_index().to_string(index=False, line_width=width)


def _frame_means(frames_df: pd.DataFrame, proto: Protocol, keys: pd.DataFrame) -> np.ndarray:
    """Pooled per-frame means for the (method, dataset, metric, protocol, protocol_hash) rows of ``keys``."""
    rows = frames_df[frames_df["protocol_hash"] == proto.hash]
    value = rows["value"].to_numpy(dtype=np.float64)
    used = np.where(np.isinf(value), proto.psnr_cap if proto.inf_policy == "cap" else np.nan, value)
    means = rows.assign(value=used).groupby(list(keys.columns), sort=True)["value"].mean()
    out = means.reindex(pd.MultiIndex.from_frame(keys)).to_numpy(dtype=np.float64)
    if np.isnan(out).any():
        bad = keys.iloc[int(np.argmax(np.isnan(out)))]
        raise SeeClearError(
            f"the per-frame table has no usable rows for {bad['method']} on {bad['dataset']} ({bad['metric']}); "
            "pass the per-frame table the clip table was built from"
        )
    return out


def load_frames(urls: Sequence[str] | str, *, source: str | None = None) -> pd.DataFrame:
    """Read one or more per-frame tables (``.parquet`` or ``.csv``), validate each and their union.

    Raises:
        SeeClearError: A file is missing, unreadable or invalid, or two files hold the same
            (method, dataset, clip, frame, metric) row (both files are named).
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise SeeClearError("no per-frame tables given; pass at least one frames.parquet or frames.csv")
    tables = [validate_frames_df(read_table(url), url) for url in urls]
    if len(tables) == 1:
        return tables[0]
    combined = pd.concat(tables, keys=range(len(tables)), names=["_file", "_row"])
    duplicated = combined.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
    if duplicated.any():
        first = combined[duplicated].iloc[0]
        same = combined[duplicated & (combined[list(KEY_COLUMNS)] == first[list(KEY_COLUMNS)]).all(axis=1).to_numpy()]
        files = [urls[i] for i in sorted({label[0] for label in same.index})]
        raise SeeClearError(
            f"{source or 'per-frame tables'}: {files[0]} and {files[-1]} both hold "
            f"({', '.join(f'{k}={_py(first[k])!r}' for k in KEY_COLUMNS)}); load each run once or rename a method"
        )
    return combined.reset_index(drop=True)


# -- files ---------------------------------------------------------------------------------------------------------
def write_parquet(df: pd.DataFrame, url: str) -> None:
    """Atomically write ``df`` (without its index) as Parquet to ``url``."""
    buffer = _bytes_io.BytesIO()
    df.to_parquet(buffer, index=False)
    io.write_bytes(url, buffer.getvalue())


def write_csv(df: pd.DataFrame, url: str) -> None:
    """Atomically write ``df`` (without its index) as UTF-8 CSV to ``url``; floats round-trip exactly, inf as ``inf``."""
    io.write_bytes(url, df.to_csv(index=False).encode("utf-8"))


def save_table(df: pd.DataFrame, url: str, formats: Sequence[str] = TABLE_FORMATS) -> list[str]:
    """Write ``df`` as ``{url}.parquet`` and ``{url}.csv`` (or only the format ``url``'s extension names).

    Returns:
        The URLs written.
    """
    for fmt in TABLE_FORMATS:
        if str(url).endswith(f".{fmt}"):
            url, formats = str(url)[: -len(fmt) - 1], (fmt,)
    written = []
    for fmt in formats:
        match fmt:
            case "parquet":
                write_parquet(df, f"{url}.parquet")
            case "csv":
                write_csv(df, f"{url}.csv")
            case _:
                raise SeeClearError(f"unknown table format {fmt!r}; expected one of {list(TABLE_FORMATS)}{did_you_mean(fmt, TABLE_FORMATS)}")
        written.append(f"{url}.{fmt}")
    return written


def read_table(url: str) -> pd.DataFrame:
    """Read a ``.parquet`` or ``.csv`` table.

    Parquet keeps every column's type. From CSV, ``frame`` is read as integers, ``value`` and the aggregate columns
    as numbers, and every other column (ids and provenance) as strings, so that clip ``"000"`` or git sha ``"0123"``
    is not turned into a number.
    """
    data = io.read_bytes(url)
    try:
        if str(url).endswith(".parquet"):
            return pd.read_parquet(_bytes_io.BytesIO(data))
        if str(url).endswith(".csv"):
            header = pd.read_csv(_bytes_io.BytesIO(data), nrows=0).columns
            dtypes = {c: str for c in header if c not in _NUMERIC_COLUMNS}
            return pd.read_csv(_bytes_io.BytesIO(data), dtype=dtypes, keep_default_na=False, na_values=[""])
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid and pandas.errors.ParserError are ValueErrors
        raise SeeClearError(f"cannot read table {url!r}: {exc}".splitlines()[0]) from exc
    raise SeeClearError(f"cannot read table {url!r}: expected a .parquet or .csv file")


# -- helpers -------------------------------------------------------------------------------------------------------
def _describe(df: pd.DataFrame, row: Any) -> str:
    return ", ".join(f"{k}={_py(df.at[row, k])!r}" for k in KEY_COLUMNS)


def _py(value: Any) -> Any:
    """numpy scalars as plain Python values, so messages read ``frame=3`` rather than ``frame=np.int64(3)``."""
    return value.item() if isinstance(value, np.generic) else value


def _split_by_protocol(
    df: pd.DataFrame, protocol: Protocol | None, extra: Iterable[Protocol]
) -> list[tuple[Protocol, pd.DataFrame]]:
    pairs = df[["protocol", "protocol_hash"]].drop_duplicates().sort_values(["protocol", "protocol_hash"])
    extra = list(extra)
    out = []
    for name, digest in pairs.itertuples(index=False):
        if protocol is not None and (name, digest) != (protocol.name, protocol.hash):
            raise SeeClearError(
                f"rows were computed under protocol {name!r} ({digest}) but protocol {protocol.name!r} "
                f"({protocol.hash}) was given; aggregate each protocol's rows separately"
            )
        proto = protocol if protocol is not None else resolve_protocol(name, digest, extra)
        out.append((proto, df[(df["protocol"] == name) & (df["protocol_hash"] == digest)]))
    return out


def _attach_constant_extras(
    table: pd.DataFrame, grouped: Any, columns: Iterable[str], schema: Sequence[str]
) -> pd.DataFrame:
    """Append provenance columns whose value is the same throughout every group (others cannot be summarised)."""
    extras = [c for c in columns if c not in schema and c not in table.columns]
    if not extras:
        return table
    counts = grouped[extras].nunique(dropna=False)
    keep = [c for c in extras if (counts[c] <= 1).all()]
    if keep:
        firsts = grouped[keep].first().reset_index(drop=True)
        table = pd.concat([table.reset_index(drop=True), firsts], axis=1)
    return table


def _finish(table: pd.DataFrame, schema: Sequence[str], order: list[str]) -> pd.DataFrame:
    columns = [*schema, *[c for c in table.columns if c not in schema]]
    return table[columns].sort_values(order, kind="stable").reset_index(drop=True)
