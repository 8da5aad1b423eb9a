"""Provenance of every leaderboard row: which checkpoint, preset, steps, seed, protocol, data, code and device made it.

Owns the provenance vocabulary (:data:`FIELDS`: canonical column names and the aliases other tools write), filling
what a per-frame table lacks from the run folder it came from (``spec.json``'s date, a content hash of each shard
manifest, the upscale records), and the per-(method, dataset) provenance table, where a missing value reads
``unknown``, a value that does not apply (a kernel baseline has no checkpoint) reads ``n/a`` and a value that differs
between rows of one leaderboard row reads ``mixed: ...``. Imports pandas and :mod:`seeclear_bench.io` only.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pandas as pd

from seeclear_bench import io

UNKNOWN: Final = "unknown"
NOT_APPLICABLE: Final = "n/a"
NO_PROVENANCE: Final = "no provenance"

# canonical column -> (label, aliases read from other tables); order is the provenance table's column order
FIELDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "checkpoint_hash": ("checkpoint", ("checkpoint_sha256", "ckpt_hash", "checkpoint")),
    "preset": ("preset", ("model_preset",)),
    "sampling_steps": ("steps", ("steps", "num_steps", "diffusion_steps")),
    "seed": ("seed", ("sampling_seed",)),
    "manifest_hash": ("data manifest", ("dataset_manifest_hash", "data_hash")),
    "seeclear_bench": ("seeclear-bench", ("seeclear_bench_version", "version")),
    "git_commit": ("git commit", ("git_sha", "commit")),
    "created_at": ("date", ("date", "run_date", "timestamp")),
    "device": ("device", ()),
}
# fields that describe learned weights: they do not apply to kernel baselines or the ground truth
WEIGHT_FIELDS: Final = ("checkpoint_hash", "preset", "sampling_steps")
PROVENANCE_COLUMNS: Final = ("method", "dataset", "protocol", "protocol_hash", *FIELDS, "source", "status")


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Rename alias columns (``git_sha``, ``date``, ``steps``...) to the canonical names of :data:`FIELDS`.

    A canonical column already present wins; the alias is then left as it is.
    """
    renames = {}
    for canonical, (_, aliases) in FIELDS.items():
        if canonical in df.columns:
            continue
        for alias in aliases:
            if alias in df.columns and alias not in renames:
                renames[alias] = canonical
                break
    return df.rename(columns=renames) if renames else df


def has_provenance(df: pd.DataFrame) -> pd.Series:
    """Per row: whether any provenance field (besides method and protocol, always present) has a value."""
    present = [c for c in FIELDS if c in df.columns]
    if not present:
        return pd.Series(False, index=df.index)
    return df[present].notna().any(axis=1)


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """Content hash of a shard manifest: 12 hex digits of the SHA-256 of its shards' names, sample counts and SHA-256.

    Dates and hosts do not enter, so two runs that prepared byte-identical shards share the hash. It is
    :attr:`ShardSet.digest <seeclear_bench.data.shardset.ShardSet>`, the digest evaluate records for the set it read
    and verified.
    """
    from seeclear_bench.data.shardset import content_digest

    return content_digest(manifest.get("shards", []))


def run_provenance(run_url: str) -> dict[str, Any]:
    """What a run folder records about itself (empty when ``run_url`` holds no ``spec.json``).

    Returns:
        ``{"created_at", "spec_hash", "command" (if recorded), "manifests": {dataset: manifest hash},
        "records": {(method, dataset): {field: value}}}``; the records are the provenance fields found in the first
        upscale record of each method and dataset under ``predictions/`` (the method's settings in its ``identity``).
    """
    from seeclear_bench.data.schema import MANIFEST_NAME
    from seeclear_bench.layout import RunLayout

    layout = RunLayout(run_url)
    if not layout.is_run():
        return {}
    spec = io.read_json(layout.spec())
    out: dict[str, Any] = {key: spec[key] for key in ("created_at", "spec_hash", "command") if key in spec}
    manifests = {}
    for dataset in layout.datasets():
        url = io.join(layout.shards(dataset), MANIFEST_NAME)
        if not io.exists(url):
            continue
        try:
            manifests[dataset] = manifest_hash(io.read_json(url))
        except (ValueError, KeyError, TypeError):  # an unreadable manifest leaves the hash unknown, visibly
            continue
    out["manifests"] = manifests
    records = {}
    for method in layout.methods():
        predictions = layout.predictions(method)
        for dataset in predictions.datasets():
            found = [url for clip in predictions.clips(dataset) for url in predictions.records(dataset, clip)]
            if found:
                raw = io.read_json(min(found))
                identity = raw.get("identity")
                config = identity.get("method") if isinstance(identity, dict) else None
                config = config if isinstance(config, dict) else {}
                record = normalise_columns(pd.DataFrame([{**raw, **config}]))
                records[(method, dataset)] = {
                    k: record.at[0, k] for k in FIELDS if k in record.columns and pd.notna(record.at[0, k])
                }
    out["records"] = records
    return out


def fill_from_run(df: pd.DataFrame, run_url: str) -> pd.DataFrame:
    """Fill the provenance fields a per-frame table lacks from the run folder that produced it.

    Only rows whose ``spec_hash`` matches the folder's ``spec.json`` (or rows without a ``spec_hash``) are filled, and
    a value already in the table is never replaced. Returns a new table; ``df`` is unchanged.
    """
    info = run_provenance(run_url)
    if not info:
        return df
    out = normalise_columns(df.copy())
    mine = pd.Series(True, index=out.index)
    if "spec_hash" in out.columns and "spec_hash" in info:
        mine = out["spec_hash"].isna() | (out["spec_hash"].astype(str) == str(info["spec_hash"]))
    if not mine.any():
        return out

    def fill(column: str, values: pd.Series) -> None:
        if column not in out.columns:
            out[column] = pd.Series(pd.NA, index=out.index, dtype=object)
        elif out[column].dtype != object:
            out[column] = out[column].astype(object)
        gap = mine & out[column].isna() & values.notna()
        out.loc[gap, column] = values[gap]

    if "created_at" in info:
        fill("created_at", pd.Series(info["created_at"], index=out.index, dtype=object))
    fill("manifest_hash", out["dataset"].map(info.get("manifests", {})).astype(object))
    for (method, dataset), record in info.get("records", {}).items():
        rows = (out["method"] == method) & (out["dataset"] == dataset)
        for column, value in record.items():
            fill(column, pd.Series([value if r else pd.NA for r in rows], index=out.index, dtype=object))
    return out


def provenance_table(frames: pd.DataFrame, *, weightless: frozenset[str] | None = None) -> pd.DataFrame:
    """One row per (method, dataset, protocol): every field of :data:`FIELDS`, the source tables and a status.

    Args:
        frames: Merged per-frame table (with ``source`` when it came from files).
        weightless: Methods that load no weights (checkpoint, preset and steps read ``n/a``); default the kernel
            baselines of :mod:`seeclear_bench.methods` and the ground-truth row.

    Returns:
        Columns :data:`PROVENANCE_COLUMNS`, as strings. ``status`` is ``complete``, ``incomplete: <fields>`` or
        :data:`NO_PROVENANCE` (no field known at all); sorted by dataset, then method.
    """
    if weightless is None:
        from seeclear_bench.methods import UPSCALERS
        from seeclear_bench.metrics.scoring import GT_METHOD

        weightless = frozenset({*UPSCALERS, GT_METHOD})
    rows = []
    keys = ["method", "dataset", "protocol", "protocol_hash"]
    for key, group in frames.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        missing = []
        for column in FIELDS:
            values = _distinct(group[column]) if column in group.columns else []
            if not values:
                if column in WEIGHT_FIELDS and row["method"] in weightless:
                    row[column] = NOT_APPLICABLE
                    continue
                row[column] = UNKNOWN
                missing.append(FIELDS[column][0])
            elif len(values) == 1:
                row[column] = values[0]
            else:
                row[column] = "mixed: " + ", ".join(values)
        row["source"] = ", ".join(_distinct(group["source"])) if "source" in group.columns else UNKNOWN
        known = [c for c in FIELDS if row[c] not in (UNKNOWN, NOT_APPLICABLE)]
        row["status"] = NO_PROVENANCE if not known else (f"incomplete: {', '.join(missing)}" if missing else "complete")
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(PROVENANCE_COLUMNS))
    return table.sort_values(["dataset", "method"], kind="stable").reset_index(drop=True)


def _distinct(values: pd.Series) -> list[str]:
    return sorted({_text(v) for v in values.dropna()})


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)
