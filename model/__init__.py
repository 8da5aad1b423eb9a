"""SeeClear (NeurIPS 2024) in PyTorch: Semantic Distiller, Pixel Condenser, InCAM, CaTeGory and the blurring-ResShift
diffusion process. See ``model/README.md`` and ``shared/docs/SEECLEAR.md``.

Depends on torch and einops only: never imports ``seeclear_bench`` or ray, does no file I/O and no device moves.
Entry points: :class:`model.seeclear.SeeClear` and :class:`model.seeclear.SeeClearConfig` (presets ``tiny``,
``small``, ``paper``); the training step is in :mod:`model.training`.
"""
from __future__ import annotations
