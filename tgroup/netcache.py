"""Finished networks on disk, one JSON file per network and seed, written as they finish.

A rerun (after a crash, or to add methods) trains only what is missing. Every
file is written atomically (temporary file, fsync, rename), so a process killed
mid-write leaves the entry either complete or absent, never half-written; a
network's result does not depend on which networks shared its chunk, so a
resumed run reports exactly what an uninterrupted one would. Files
live under ``directory/<identity hash>/`` where the identity holds everything
that determines a network's result besides its group and seed (the benchmark's
settings, steps, chunk size): runs with other settings never mix, and never
overwrite each other.
"""
from __future__ import annotations

import hashlib
import os

from tgroup import distributed
from tgroup import identity as identity_lib
from tgroup import io
from tgroup.errors import UserError
from tgroup.evaluate import Group, NetworkResult


class NetworkCache:
  """Per-network results keyed by (group, seed) under an identity.

  Examples:
    >>> import tempfile, numpy as np
    >>> cache = NetworkCache(tempfile.mkdtemp(), {"benchmark": "toy", "steps": 10})
    >>> r = NetworkResult((0, 2), np.ones(3), np.ones(3), None, None, 1.5)
    >>> cache.put((0, 2), 0, r)
    >>> cache.get((0, 2), 0).seconds, cache.get((0, 2), 1)
    (1.5, None)
  """

  def __init__(self, directory: str, identity: dict):
    self.directory = os.path.join(directory, identity_lib.digest(identity))
    self.identity = identity
    # In a distributed run, what this run trained, for the processes that do not
    # write: they then take the decisions process 0 takes from its own files,
    # whenever those land on a shared disk.
    self._this_run: dict[tuple[Group, int], NetworkResult] = {}
    os.makedirs(self.directory, exist_ok=True)
    identity_path = os.path.join(self.directory, "identity.json")
    if not os.path.exists(identity_path):
      io.write_json(identity_path, identity)

  def _path(self, group: Group, seed: int) -> str:
    return os.path.join(self.directory, f"{file_stem(group)}_s{seed}.json")

  def get(self, group: Group, seed: int) -> NetworkResult | None:
    if (group, seed) in self._this_run:
      return self._this_run[(group, seed)]
    path = self._path(group, seed)
    if not os.path.exists(path):
      return None
    try:
      return NetworkResult.from_json(io.read_json(path))
    except (KeyError, TypeError, ValueError) as e:
      raise UserError(f"{path}: not a network result ({type(e).__name__}: {e}); delete it to "
                      "retrain that network") from None

  def put(self, group: Group, seed: int, result: NetworkResult) -> None:
    saved = result.to_json()
    if not distributed.writes_files():
      self._this_run[(group, seed)] = NetworkResult.from_json(saved)  # as process 0 reads it
    io.write_json(self._path(group, seed), saved)

  def __len__(self) -> int:
    return sum(1 for f in os.listdir(self.directory) if f.endswith(".json")) - 1


# File names stay well below the 255 bytes most file systems allow.
_MAX_STEM = 120


def file_stem(group: Group) -> str:
  """A network's file name without the seed: its task indices, or a digest when too long.

  Indices joined by ``-`` name a group at a glance; a group of many tasks (the
  all-tasks network of 100 tasks needs 290 characters) is named by its size and
  the SHA-256 of that text instead.

  Examples:
    >>> file_stem((0, 2, 5))
    '0-2-5'
    >>> file_stem(tuple(range(100)))
    '100tasks-d3bda65456c30184b0f388e5'
  """
  stem = "-".join(map(str, group))
  if len(stem) <= _MAX_STEM:
    return stem
  return f"{len(group)}tasks-{hashlib.sha256(stem.encode()).hexdigest()[:24]}"


class MemoryCache:
  """The same interface, in memory: for runs that must not reuse files (no run key)."""

  def __init__(self):
    self._results: dict = {}

  def get(self, group: Group, seed: int) -> NetworkResult | None:
    return self._results.get((group, seed))

  def put(self, group: Group, seed: int, result: NetworkResult) -> None:
    self._results[(group, seed)] = result
