"""Train each group's network from scratch and score every task (docs/design.md §4).

Every network has the same architecture (the TaskSet's model), optimizer, number
of steps, initialisation seed and batch order; only the tasks whose losses it
trains on differ. Networks train together under ``vmap`` in fixed-size chunks,
and a network shared by several methods is trained once.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Mapping, Protocol, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from tgroup import train
from tgroup.tasks import TaskSet

Group = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class NetworkResult:
  """Per-task results of one trained network (one seed, or the mean over seeds).

  Arrays are ``(m,)``; only the entries of the network's own tasks mean anything.
  ``seconds`` is the network's share of its chunk's training and evaluation time
  (summed over seeds for a mean).
  """
  group: Group
  test_loss: np.ndarray
  test_metric: np.ndarray
  val_loss: np.ndarray | None
  val_metric: np.ndarray | None
  seconds: float

  def to_json(self) -> dict:
    arr = lambda a: None if a is None else np.asarray(a, float).tolist()
    return {"group": list(self.group), "test_loss": arr(self.test_loss),
            "test_metric": arr(self.test_metric), "val_loss": arr(self.val_loss),
            "val_metric": arr(self.val_metric), "seconds": self.seconds}

  @classmethod
  def from_json(cls, d: dict) -> "NetworkResult":
    arr = lambda a: None if a is None else np.asarray(a, float)
    return cls(tuple(d["group"]), arr(d["test_loss"]), arr(d["test_metric"]),
               arr(d["val_loss"]), arr(d["val_metric"]), float(d["seconds"]))


class ResultCache(Protocol):
  """Where finished networks are kept (see :class:`tgroup.netcache.NetworkCache`)."""

  def get(self, group: Group, seed: int) -> NetworkResult | None: ...

  def put(self, group: Group, seed: int, result: NetworkResult) -> None: ...


def train_groups(taskset: TaskSet, groups: Sequence[Sequence[int]], *, seeds: Sequence[int] = (0,),
                 steps: int | None = None, chunk_size: int = 16, quiet: bool = False,
                 cache: ResultCache | None = None, mesh: Mesh | None = None
                 ) -> dict[Group, NetworkResult]:
  """Trains one network per distinct group and seed; returns results per group.

  Networks train in chunks of exactly ``chunk_size`` under vmap (the last chunk
  padded with networks that train on no task). A network's result then depends
  only on its group, seed and the chunk size, bit for bit, not on which networks
  share its chunk: so a network shared by several methods, the oracle's table and
  a resumed run all see the same numbers.

  Args:
    taskset: the problem.
    groups: task-index groups (duplicates are trained once).
    seeds: evaluation seeds; seed k sets the initialisation and batch order of
      every network alike, and results are averaged over seeds.
    steps: training steps (None: the TaskSet's default).
    chunk_size: networks trained at once.
    quiet: no progress lines.
    cache: finished networks are read from and written to it, chunk by chunk.
    mesh: split each chunk over the mesh's ``networks`` axis and every batch
      over its ``data`` axis (:mod:`tgroup.mesh`); None: one device.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=128, num_val=32, num_test=32, batch_size=32)
    >>> res = train_groups(ts, [(0, 1), (2,), (3,)], steps=5, chunk_size=2, quiet=True)
    >>> sorted(res), res[(0, 1)].test_loss.shape
    ([(0, 1), (2,), (3,)], (4,))
  """
  taskset.check()
  steps = steps or taskset.train_steps
  unique = list(dict.fromkeys(tuple(sorted(g)) for g in groups))
  done: dict[tuple[Group, int], NetworkResult] = {}
  for seed in seeds:
    todo = []
    for g in unique:
      hit = cache.get(g, seed) if cache is not None else None
      if hit is not None:
        done[(g, seed)] = hit
      else:
        todo.append(g)
    for start in range(0, len(todo), chunk_size):
      chunk = todo[start:start + chunk_size]
      for g, result in zip(chunk, _train_chunk(taskset, chunk, seed, steps, chunk_size, quiet,
                                               mesh)):
        done[(g, seed)] = result
        if cache is not None:
          cache.put(g, seed, result)
  return {g: _mean_over_seeds([done[(g, s)] for s in seeds]) for g in unique}


def _train_chunk(taskset: TaskSet, chunk: Sequence[Group], seed: int, steps: int,
                 chunk_size: int, quiet: bool, mesh: Mesh | None = None) -> list[NetworkResult]:
  masks = np.zeros((chunk_size, taskset.num_tasks), np.float32)
  for k, g in enumerate(chunk):
    masks[k, list(g)] = 1.0
  start = time.perf_counter()
  keys = jnp.stack([jax.random.key(seed)] * chunk_size)
  states = train.train_networks(taskset, masks, keys, steps=steps, data_seed=seed, quiet=quiet,
                                desc=f"train {len(chunk)} networks (seed {seed})", mesh=mesh)
  test_loss, test_metric = train.evaluate(taskset, states.params, taskset.test, stacked=True,
                                          mesh=mesh)
  val_loss = val_metric = None
  if taskset.val is not None:
    val_loss, val_metric = train.evaluate(taskset, states.params, taskset.val, stacked=True,
                                          mesh=mesh)
  seconds = (time.perf_counter() - start) / len(chunk)
  pick = lambda a, k: None if a is None else a[k]
  return [NetworkResult(g, test_loss[k], test_metric[k], pick(val_loss, k), pick(val_metric, k),
                        seconds) for k, g in enumerate(chunk)]


def _mean_over_seeds(rows: Sequence[NetworkResult]) -> NetworkResult:
  if len(rows) == 1:
    return rows[0]
  mean = lambda name: (None if getattr(rows[0], name) is None
                       else np.mean([getattr(r, name) for r in rows], axis=0))
  return NetworkResult(rows[0].group, mean("test_loss"), mean("test_metric"), mean("val_loss"),
                       mean("val_metric"), float(sum(r.seconds for r in rows)))


def score_grouping(taskset: TaskSet, groups: Sequence[Sequence[int]],
                   assignment: Mapping[int, int] | None,
                   results: Mapping[Group, NetworkResult]) -> dict:
  """Per-task test loss and metric of a grouping, each task on its serving network.

  ``assignment`` maps a task to the index of the group that serves it (cover
  groupings); with None each task is served by the (single) group holding it.
  """
  groups = [tuple(sorted(g)) for g in groups]
  per_task, train_seconds = {}, 0.0
  for t in range(taskset.num_tasks):
    g = groups[assignment[t]] if assignment is not None else next(g for g in groups if t in g)
    r = results[g]
    per_task[taskset.tasks[t]] = {"test_loss": float(r.test_loss[t]),
                                  "test_metric": float(r.test_metric[t])}
  train_seconds = sum(results[g].seconds for g in dict.fromkeys(groups))
  losses = [v["test_loss"] for v in per_task.values()]
  metrics = [v["test_metric"] for v in per_task.values()]
  return {
      "per_task": per_task,
      "total_test_loss": float(np.sum(losses)),
      "total_test_error": float(np.sum(metrics)) if taskset.metric_is_error else None,
      "train_seconds": train_seconds,
  }


def delta_m(metrics: Sequence[float], reference: Sequence[float], higher_is_better: bool) -> float:
  """Mean relative improvement over the reference (STL), in percent; > 0 is better.

  Examples:
    >>> delta_m([0.9, 1.2], [1.0, 1.0], higher_is_better=False)  # −10% and +20% error
    -5.0
  """
  metrics, reference = np.asarray(metrics, float), np.asarray(reference, float)
  sign = 1.0 if higher_is_better else -1.0
  return float(round(100.0 * np.mean(sign * (metrics - reference) / reference), 10))
