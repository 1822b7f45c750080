"""In-memory datasets: shared inputs and one label column per task.

A dataset only has to offer two methods, so users can wrap their own loaders:
``train_batches(batch_size, seed)`` (an endless, reshuffled stream of full batches)
and ``eval_batches(batch_size)`` (one pass in order, the last batch padded and
flagged by ``Batch.weights``). ``train_batches`` may also take ``start``, the
number of batches to skip: a resumed collection run then continues the stream
without reading the skipped batches (a dataset without it is advanced by drawing
and discarding them). Both may take ``rows``, a slice of each batch's positions:
a process of a distributed run then reads only the rows its devices hold (a
dataset without it is read whole and cut, :func:`tgroup.mesh.read`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, NamedTuple

import jax
import numpy as np


class Batch(NamedTuple):
  """One batch: ``inputs`` shared by every task, ``labels`` with a task axis last.

  ``weights`` is 1 for real samples and 0 for padding (evaluation only).
  """
  inputs: Any
  labels: Any
  weights: np.ndarray


def shuffled_batch_indices(n: int, batch_size: int, seed: int,
                           start: int = 0) -> Iterator[np.ndarray]:
  """Endless index batches of the training order every dataset here shares.

  One seeded permutation of ``range(n)`` per epoch, cut into ``n // batch_size``
  full batches (the remainder is dropped for that epoch). ``start`` skips that
  many batches without materialising them: the stream is exactly the tail of the
  one from 0, which is what a resumed run needs.

  Examples:
    >>> whole = [b.tolist() for b, _ in zip(shuffled_batch_indices(5, 2, 0), range(5))]
    >>> tail = [b.tolist() for b, _ in zip(shuffled_batch_indices(5, 2, 0, start=3), range(2))]
    >>> tail == whole[3:]
    True
  """
  if start < 0:
    raise ValueError(f"start must be >= 0, got {start}")
  rng = np.random.default_rng(seed)
  per_epoch = n // batch_size
  epoch, offset = divmod(start, per_epoch)
  for _ in range(epoch):  # the generator's state after the skipped epochs' shuffles
    rng.permutation(n)
  while True:
    order = rng.permutation(n)
    for k in range(offset, per_epoch):
      yield order[k * batch_size:(k + 1) * batch_size]
    offset = 0


def _num_rows(tree) -> int:
  """Rows of the first array of a pytree (an array is a pytree of one array)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    raise ValueError("inputs hold no arrays")
  return len(leaves[0])


def _take(tree, idx):
  """The rows ``idx`` of every array of a pytree."""
  return jax.tree.map(lambda a: a[idx], tree)


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """Inputs ``(n, ...)`` and labels ``(n, ..., m)`` held in memory.

  Inputs may be a pytree of such arrays (e.g. a dict of instances of several
  problems, as the routing benchmark's), every leaf with the same ``n`` rows.

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
    rows = {len(leaf) for leaf in jax.tree.leaves(self.inputs)}
    if len(rows) > 1:
      raise ValueError(f"the inputs' arrays have different numbers of rows: {sorted(rows)}")
    if _num_rows(self.inputs) != len(self.labels):
      raise ValueError(f"{_num_rows(self.inputs)} inputs but {len(self.labels)} labels")

  def __len__(self) -> int:
    return _num_rows(self.inputs)

  @property
  def num_tasks(self) -> int:
    return self.labels.shape[-1]

  def train_batches(self, batch_size: int, seed: int, start: int = 0,
                    rows: slice | None = None) -> Iterator[Batch]:
    """Endless stream of full batches, reshuffled each epoch by ``seed``.

    ``start`` skips that many batches cheaply: the stream is exactly the tail of
    the one from 0 (a resumed run sees the batches the uninterrupted one would).
    ``rows``: only those positions of each batch (a distributed run's share).

    Examples:
      >>> ds = ArrayDataset(np.arange(10.0)[:, None], np.zeros((10, 1)))
      >>> whole = [b.inputs[:, 0].tolist() for b, _ in zip(ds.train_batches(3, 0), range(7))]
      >>> tail = [b.inputs[:, 0].tolist() for b, _ in zip(ds.train_batches(3, 0, start=4),
      ...                                                 range(3))]
      >>> tail == whole[4:]
      True
    """
    n = len(self)
    if batch_size > n:
      raise ValueError(f"batch_size={batch_size} exceeds the {n} training samples")
    rows = slice(None) if rows is None else rows
    ones = np.ones(batch_size, np.float32)[rows]
    for idx in shuffled_batch_indices(n, batch_size, seed, start):
      yield Batch(_take(self.inputs, idx[rows]), self.labels[idx[rows]], ones)

  def eval_batches(self, batch_size: int, rows: slice | None = None) -> Iterator[Batch]:
    """One ordered pass; the last batch is padded to ``batch_size`` (weights 0).

    ``rows``: only those positions of each batch (a distributed run's share).

    Examples:
      >>> ds = ArrayDataset(np.arange(5.0)[:, None], np.zeros((5, 1)))
      >>> [b.inputs[:, 0].tolist() for b in ds.eval_batches(4, rows=slice(2, 4))]
      [[2.0, 3.0], [4.0, 4.0]]
    """
    n = len(self)
    rows = slice(None) if rows is None else rows
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)[rows]
      weights = (idx < n).astype(np.float32)
      idx = np.minimum(idx, n - 1)  # padding repeats the last sample, weight 0
      yield Batch(_take(self.inputs, idx), self.labels[idx], weights)
