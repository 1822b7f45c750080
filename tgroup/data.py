"""In-memory datasets: shared inputs and one label column per task.

A dataset only has to offer two methods, so users can wrap their own loaders:
``train_batches(batch_size, seed)`` (an endless, reshuffled stream of full batches)
and ``eval_batches(batch_size)`` (one pass in order, the last batch padded and
flagged by ``Batch.weights``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, NamedTuple

import numpy as np


class Batch(NamedTuple):
  """One batch: ``inputs`` shared by every task, ``labels`` with a task axis last.

  ``weights`` is 1 for real samples and 0 for padding (evaluation only).
  """
  inputs: Any
  labels: Any
  weights: np.ndarray


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """Inputs ``(n, ...)`` and labels ``(n, ..., m)`` held in memory.

  Examples:
    >>> ds = ArrayDataset(np.zeros((10, 3)), np.zeros((10, 2)))
    >>> len(ds), next(ds.train_batches(4, seed=0)).inputs.shape
    (10, (4, 3))
    >>> [int(b.weights.sum()) for b in ds.eval_batches(4)]
    [4, 4, 2]
  """
  inputs: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if len(self.inputs) != len(self.labels):
      raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")

  def __len__(self) -> int:
    return len(self.inputs)

  @property
  def num_tasks(self) -> int:
    return self.labels.shape[-1]

  def train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless stream of full batches, reshuffled each epoch by ``seed``."""
    n = len(self)
    if batch_size > n:
      raise ValueError(f"batch_size={batch_size} exceeds the {n} training samples")
    rng = np.random.default_rng(seed)
    ones = np.ones(batch_size, np.float32)
    while True:
      order = rng.permutation(n)
      for start in range(0, n - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        yield Batch(self.inputs[idx], self.labels[idx], ones)

  def eval_batches(self, batch_size: int) -> Iterator[Batch]:
    """One ordered pass; the last batch is padded to ``batch_size`` (weights 0)."""
    n = len(self)
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)
      weights = (idx < n).astype(np.float32)
      idx = np.minimum(idx, n - 1)  # padding repeats the last sample, weight 0
      yield Batch(self.inputs[idx], self.labels[idx], weights)
