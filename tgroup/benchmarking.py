"""Timing helpers for ``launch.bench``: compiled functions, interleaved repeats, medians.

Measurements of several functions are interleaved round by round so that load
from other processes on a shared machine hits them alike, and ratios taken in
one run stay meaningful.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Callable, Mapping

import jax
import numpy as np


def device_description() -> str:
  """e.g. ``cpu (2 cores, x86_64)`` or ``gpu: NVIDIA H100 80GB HBM3``."""
  dev = jax.devices()[0]
  if dev.platform == "cpu":
    return f"cpu ({os.cpu_count()} cores, {platform.machine()})"
  return f"{dev.platform}: {dev.device_kind}"


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, rounds: int = 30,
                     warmup: int = 3) -> dict[str, float]:
  """Median milliseconds of each zero-argument function (results blocked on).

  Examples:
    >>> import jax.numpy as jnp
    >>> ms = time_interleaved({"add": lambda: jnp.ones(3) + 1}, rounds=3, warmup=1)
    >>> ms["add"] > 0
    True
  """
  for fn in fns.values():
    for _ in range(warmup):
      jax.block_until_ready(fn())
  samples = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      samples[name].append(1e3 * (time.perf_counter() - start))
  return {name: float(np.median(v)) for name, v in samples.items()}
