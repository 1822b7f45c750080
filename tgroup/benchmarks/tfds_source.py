"""Batches from a prepared TensorFlow Datasets split, without TensorFlow.

``tfds.data_source`` gives random access to a dataset prepared as array_record
files: ``source[i]`` reads one record and decodes it with NumPy (images with PIL).
:class:`RecordDataset` turns such a source into the two methods a
:class:`tgroup.tasks.TaskSet` needs (see :mod:`tgroup.data`), decoding and
transforming the examples of each batch when the batch is drawn. With ``cache``
(the default) it keeps what the transform returned, so an example is decoded once
per process however many epochs and networks read it.

Why the cache: decoding is slow next to a small network's step. Measured on a
2-core CPU, one celeb_a example takes ≈ 1.1 ms to read and decode (most of it
tfds's Python parsing of 52 features, which holds the GIL, so threads barely
help), ≈ 0.4 s for a batch of 256; the pipeline reads the training set once per
epoch in the collection run and again in every chunk of group networks.

Why plain NumPy rather than grain: shuffling is one seeded permutation per epoch,
the transform one vectorised NumPy call per batch, and with the cache each
example is decoded once; grain's multiprocess workers would speed up that first
pass but add a dependency and its own sharding machinery that a single host does
not need. JAX dispatches device work asynchronously, so a batch is prepared while
the device computes the previous step.

TensorFlow is never imported: ``tensorflow_datasets`` is imported lazily, and its
``data_source`` path does not touch TensorFlow.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tgroup.data import Batch
from tgroup.data import shuffled_batch_indices
from tgroup.errors import UserError

# examples (decoded feature dicts) -> (inputs, labels) with a leading batch axis.
Transform = Callable[[Sequence[Any]], tuple[np.ndarray, np.ndarray]]


def open_split(name: str, split: str, data_dir: str, how_to_prepare: str) -> Sequence[Any]:
  """The random-access source of one split, or a one-line error saying how to prepare it.

  Never downloads: ``tfds.data_source`` would otherwise start a download and
  preparation on a machine where the data are missing.

  Raises:
    UserError: the dataset is not prepared in ``data_dir`` as array_record files
      (missing, or prepared in another file format); the message ends with
      ``how_to_prepare``.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (optional extra)
  except ImportError:
    raise UserError(f"reading {name} needs tensorflow-datasets and array-record "
                    "(pip install -e '.[celeba]'; TensorFlow is not needed)") from None
  from absl import logging  # pylint: disable=g-import-not-at-top
  # tfds warns (absl, level WARNING) about a missing dataset folder before it
  # raises; the user should see our one line only.
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except (NotImplementedError, FileNotFoundError):
    # tfds answers NotImplementedError ("random access ... not supported for
    # TFRECORD") both when nothing is prepared and when the files are TFRecord.
    raise UserError(f"{name} is not prepared as array_record files in {data_dir}; "
                    f"{how_to_prepare}") from None
  finally:
    logging.set_verbosity(verbosity)


@dataclasses.dataclass(frozen=True, eq=False)
class RecordDataset:
  """A dataset over the first ``size`` records of a random-access ``source``.

  Attributes:
    source: ``source[i]`` returns example ``i`` (e.g. a ``tfds.data_source`` split).
    transform: turns a list of examples into ``(inputs, labels)`` arrays; with
      ``cache`` these are what is kept, so keep them compact (e.g. uint8 images).
    finish: applied to the inputs of every batch after the cache (e.g. uint8 to
      float); None: none.
    size: how many records to use (None: all). tfds stores records in a shuffled
      order, so the first ``size`` are a fair subsample.
    workers: threads that read and decode the examples of a batch.
    cache: keep every transformed example in memory after its first read.

  Examples:
    >>> source = [{"x": i} for i in range(10)]
    >>> to_arrays = lambda exs: (np.array([[e["x"]] for e in exs], np.uint8),
    ...                          np.array([[e["x"] > 4] for e in exs], np.int32))
    >>> ds = RecordDataset(source, to_arrays, finish=lambda x: x / 10, size=6, workers=2)
    >>> len(ds), next(ds.train_batches(4, seed=0)).inputs.shape
    (6, (4, 1))
    >>> [b.inputs[:, 0].tolist() for b in ds.eval_batches(4)]
    [[0.0, 0.1, 0.2, 0.3], [0.4, 0.5, 0.5, 0.5]]
    >>> [b.weights.tolist() for b in ds.eval_batches(4)]
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
  """
  source: Sequence[Any]
  transform: Transform
  finish: Callable[[np.ndarray], np.ndarray] | None = None
  size: int | None = None
  workers: int = 8
  cache: bool = True
  _store: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

  def __post_init__(self):
    available = len(self.source)
    size = available if self.size is None else min(self.size, available)
    if size < 1:
      raise UserError(f"a dataset needs at least one example, got size={self.size}")
    object.__setattr__(self, "size", size)

  def __len__(self) -> int:
    return self.size

  def load(self, indices: Sequence[int], pool=None) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of the examples at ``indices``, in that order."""
    indices = np.asarray(indices, np.int64)
    if self.cache:
      inputs, labels = self._cached(indices, pool)
    else:
      inputs, labels = self._read(indices, pool)
    return (self.finish(inputs) if self.finish else inputs), labels

  def _read(self, indices: np.ndarray, pool) -> tuple[np.ndarray, np.ndarray]:
    read = self.source.__getitem__
    keys = indices.tolist()
    examples = list(pool.map(read, keys)) if pool else [read(k) for k in keys]
    return self.transform(examples)

  def _cached(self, indices: np.ndarray, pool) -> tuple[np.ndarray, np.ndarray]:
    store = self._store
    missing = np.unique(indices[~store["filled"][indices]] if store else indices)
    if missing.size:
      inputs, labels = self._read(missing, pool)
      if not store:  # allocated once the transform's shapes are known; filled as read
        store["inputs"] = np.empty((self.size, *inputs.shape[1:]), inputs.dtype)
        store["labels"] = np.empty((self.size, *labels.shape[1:]), labels.dtype)
        store["filled"] = np.zeros(self.size, bool)
      store["inputs"][missing], store["labels"][missing] = inputs, labels
      store["filled"][missing] = True
    return store["inputs"][indices], store["labels"][indices]

  def train_batches(self, batch_size: int, seed: int, start: int = 0,
                    rows: slice | None = None) -> Iterator[Batch]:
    """Endless stream of full batches, reshuffled each epoch by ``seed``.

    ``start`` skips that many batches without reading them (as
    :meth:`tgroup.data.ArrayDataset.train_batches`): the stream is exactly the
    tail of the one from 0. ``rows``: only those positions of each batch are
    read and decoded (a distributed run's share).
    """
    n = len(self)
    if batch_size > n:
      raise UserError(f"batch size {batch_size} exceeds the {n} training examples")
    rows = slice(None) if rows is None else rows
    ones = np.ones(batch_size, np.float32)[rows]
    with self._pool() as pool:
      for idx in shuffled_batch_indices(n, batch_size, seed, start):
        inputs, labels = self.load(idx[rows], pool)
        yield Batch(inputs, labels, ones)

  def eval_batches(self, batch_size: int, rows: slice | None = None) -> Iterator[Batch]:
    """One ordered pass; the last batch is padded to ``batch_size`` (weights 0).

    ``rows``: only those positions of each batch are read (a distributed run's share).
    """
    n = len(self)
    rows = slice(None) if rows is None else rows
    with self._pool() as pool:
      for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)[rows]
        weights = (idx < n).astype(np.float32)
        # Padding repeats the last example, read once, weight 0.
        read, position = np.unique(np.minimum(idx, n - 1), return_inverse=True)
        inputs, labels = self.load(read, pool)
        inputs, labels = inputs[position], labels[position]
        yield Batch(inputs, labels, weights)

  def _pool(self):
    return concurrent.futures.ThreadPoolExecutor(max(1, self.workers))

