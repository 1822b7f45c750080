"""Rank statistics shared by the gains history and the report (NumPy only)."""
from __future__ import annotations

import numpy as np


def spearman(a, b) -> float:
  """Spearman rank correlation of two equal-length vectors (ties get their average rank).

  NaN when either vector is constant: a correlation with no variation is
  undefined, not zero (the report writes it as null).

  Examples:
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
    >>> spearman(np.ones(3), np.array([1.0, 2.0, 3.0]))
    nan
  """
  ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
  ra, rb = ra - ra.mean(), rb - rb.mean()
  denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
  return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def ranks(x: np.ndarray) -> np.ndarray:
  """Ranks from 0, ties sharing their average rank.

  Examples:
    >>> ranks(np.array([3.0, 1.0, 3.0])).tolist()
    [1.5, 0.0, 1.5]
  """
  order = np.argsort(x, kind="stable")
  r = np.empty(len(x))
  r[order] = np.arange(len(x), dtype=float)
  _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
  sums = np.bincount(inverse, weights=r)
  return sums[inverse] / counts[inverse]
