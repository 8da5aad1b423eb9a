"""The identity of each stage's outputs: a hash of exactly the inputs that change them, so valid work is reused.

- shards (:func:`shards_identity`): the source (name, URL, layout, split, clip list, frame range), the degradation,
  the shard layout, the seed and :data:`SHARDS_CODE_VERSION` (with the shard format). The stage list, the methods and
  the metrics of a spec do not enter it, so ``prepare`` and ``run`` of one spec share their shards, and a new metric
  does not rebuild them.
- predictions (:func:`prediction_identity`), one per (method, whole video): the input's digest (a shard set's
  content digest, :attr:`ShardSet.digest`), the scale asked for and the method's own description (kernel, or
  checkpoint hash, weights, steps, seed, memory on or off).
- metric parts: the protocol hash, each metric's hash and the SHA-256 of every frame scored, per method
  (:func:`seeclear_bench.stages.score_with_reuse`), so adding a metric scores only that metric and adding a method
  scores only that method.

The whole-spec hash (:func:`seeclear_bench.config.spec_hash`) stays for provenance only. Imports config only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Final

from seeclear_bench.config import RunConfig, SourceConfig

# Bump when prepare writes different bytes for the same inputs (a new encoder setting, a new meta field), so shard
# sets made by an older version are rebuilt rather than reused.
SHARDS_CODE_VERSION: Final = 3  # 3: HR PNG sources kept as they are, frames encoded at zlib level 1 (issue 13)
IDENTITY_DIGITS: Final = 16


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:IDENTITY_DIGITS]


def shards_inputs(cfg: RunConfig, source: SourceConfig) -> dict[str, Any]:
    """Everything that changes the shard set of ``source`` (recorded in its manifest beside the identity)."""
    from seeclear_bench.data import schema

    spec = cfg.to_dict()
    return {
        "source": dataclasses.asdict(source),
        "degrade": spec["degrade"],
        "shards": spec["shards"],
        "seed": cfg.seed,
        "code": {"shards": SHARDS_CODE_VERSION, "format": schema.MANIFEST_FORMAT},
    }


def shards_identity(cfg: RunConfig, source: SourceConfig) -> str:
    """Hash of :func:`shards_inputs`: equal for two specs exactly when their shards of ``source`` are the same."""
    return _digest(shards_inputs(cfg, source))


def prediction_identity(input_digest: str, method: dict[str, Any], scale: int = 0) -> dict[str, Any]:
    """What a video's prediction record must name to be reused.

    Args:
        input_digest: the shard set's content digest; "" for frame folders and video files (read as they are).
        method: the method's description (``Upscaler.describe()``).
        scale: the scale asked for; 0: the input's own (a shard set's) or the method's (a SeeClear checkpoint's).
    """
    return {"shards": input_digest, "scale": int(scale), "method": method}
