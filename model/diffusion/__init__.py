"""The blurring-ResShift process: schedules, forward marginal, posterior, sampler. Skeleton for now."""
from __future__ import annotations
