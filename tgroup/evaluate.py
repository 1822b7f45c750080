"""Train each group's network from scratch and score every task (DESIGN §4).

Every network has the same architecture (the TaskSet's model), optimizer, number
of steps, initialisation seed and batch order; only the tasks whose losses it
trains on differ. Networks train together under ``vmap`` (chunks of
``max_parallel``), and a network shared by several methods is trained once.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tgroup import train
from tgroup.tasks import TaskSet

Group = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class NetworkResult:
  """Per-task results of one trained network, averaged over evaluation seeds.

  Arrays are ``(m,)``; only the entries of the network's own tasks mean anything.
  """
  group: Group
  test_loss: np.ndarray
  test_metric: np.ndarray
  val_loss: np.ndarray | None
  seconds: float


def train_groups(taskset: TaskSet, groups: Sequence[Sequence[int]], *, seeds: Sequence[int] = (0,),
                 steps: int | None = None, max_parallel: int = 64, quiet: bool = False,
                 ) -> dict[Group, NetworkResult]:
  """Trains one network per distinct group and seed; returns results per group.

  Args:
    taskset: the problem.
    groups: task-index groups (duplicates are trained once).
    seeds: evaluation seeds; seed k sets the initialisation and batch order of
      every network alike, and results are averaged over seeds.
    steps: training steps (None: the TaskSet's default).
    max_parallel: networks trained at once under vmap.
    quiet: no progress lines.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=128, num_val=32, num_test=32, batch_size=32)
    >>> res = train_groups(ts, [(0, 1), (2,), (3,)], steps=5, quiet=True)
    >>> sorted(res), res[(0, 1)].test_loss.shape
    ([(0, 1), (2,), (3,)], (4,))
  """
  steps = steps or taskset.train_steps
  unique = list(dict.fromkeys(tuple(sorted(g)) for g in groups))
  jobs = [(g, seed) for g in unique for seed in seeds]
  m = taskset.num_tasks
  per_job: dict = {}
  for start in range(0, len(jobs), max_parallel):
    chunk = jobs[start:start + max_parallel]
    # Jobs of one seed share the batch order, so a chunk holds one seed at a time.
    for seed in dict.fromkeys(s for _, s in chunk):
      sub = [g for g, s in chunk if s == seed]
      masks = np.zeros((len(sub), m), np.float32)
      for k, g in enumerate(sub):
        masks[k, list(g)] = 1.0
      t0 = time.perf_counter()
      keys = jnp.stack([jax.random.key(seed)] * len(sub))
      states = train.train_networks(taskset, masks, keys, steps=steps, data_seed=seed,
                                    quiet=quiet, desc=f"train {len(sub)} networks (seed {seed})")
      test_loss, test_metric = train.evaluate(taskset, states.params, taskset.test, stacked=True)
      val_loss = (train.evaluate(taskset, states.params, taskset.val, stacked=True)[0]
                  if taskset.val is not None else None)
      seconds = (time.perf_counter() - t0) / len(sub)
      for k, g in enumerate(sub):
        per_job[(g, seed)] = (test_loss[k], test_metric[k],
                              None if val_loss is None else val_loss[k], seconds)
  results = {}
  for g in unique:
    rows = [per_job[(g, s)] for s in seeds]
    mean = lambda i: np.mean([r[i] for r in rows], axis=0)
    results[g] = NetworkResult(g, mean(0), mean(1), None if rows[0][2] is None else mean(2),
                               float(sum(r[3] for r in rows)))
  return results


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
