"""The routing TaskSet: one task per (problem, size), one shared-encoder solver.

Training data are generated afresh for every batch (:class:`GeneratedInstances`,
seeded by the run's data seed and the step), as in the attention-model and
POMO literature; validation and test sets are fixed, seeded and carry reference
objectives (:mod:`tgroup.benchmarks.cop.reference`), computed once and cached.

Loss (training): POMO's REINFORCE with a shared baseline. Each instance is
solved from ``starts`` forced first nodes by sampling; a solution's advantage is
its reward (−length, or the prize/value) minus the mean over the instance's
starts, and the per-sample loss is ``−mean_p stop_grad(advantage_p) · log π(solution_p)``.
Its expectation is the policy gradient's objective, but one batch's value is
noise around zero: a poor score for lookahead steps.

Lookahead score (``TaskSet.lookahead_losses``): the tasks' validation
objective, the greedy rollouts' mean over the fixed validation instances and
starts, as a positive loss: the mean tour length for TSP and CVRP, the
reciprocal of the mean prize or value for OP and KP. A lookahead step is
the real Adam step on the REINFORCE gradient of the combination's tasks; its
gain for task j is ``1 − score_j(θ⁺)/score_j(θ)``, the relative shortening of j's
tours (or, for OP and KP, ``1 − P_j(θ)/P_j(θ⁺)``, to first order the relative
gain in prize): the gains definition with the validation objective as L. Greedy
decoding is piecewise constant in θ, so one step moves the score only where a
decision flips; the mean over every start of every validation instance has
many decisions to flip, and gains are averaged over the collected steps.

Metric (test, validation): the optimality gap in percent of the best greedy
solution over the starts, ``100 · (length − reference) / reference`` (for OP and
KP ``100 · (reference − prize) / reference``), against the reference solver's
objective. A reference that is not proven optimal (OR-Tools within a time
limit) can be beaten, giving a negative gap.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import progress
from tgroup import tasks as tasks_lib
from tgroup.benchmarks.cop import instances as instances_lib
from tgroup.benchmarks.cop import model as model_lib
from tgroup.benchmarks.cop.instances import Task
from tgroup.errors import UserError


def _split_seed(split: str, task: Task, seed: int) -> int:
  """A 31-bit seed per (split, task, instance seed): adding a task changes no other's set."""
  return zlib.crc32(f"{split}/{task.name}/{seed}".encode()) & 0x7FFFFFFF


def _inputs(tasks: Sequence[Task], key: jax.Array, batch: int, sample: bool) -> dict:
  """One batch of every task's instances, with per-instance sampling keys."""
  out = {task.name: instances_lib.generate(task, jax.random.fold_in(key, t), batch)
         for t, task in enumerate(tasks)}
  out["key"] = jax.random.key_data(jax.random.split(jax.random.fold_in(key, len(tasks)), batch))
  out["sample"] = jnp.full((batch,), 1.0 if sample else 0.0)
  return jax.tree.map(np.asarray, out)


@dataclasses.dataclass(frozen=True)
class GeneratedInstances:
  """Training data: fresh instances for every batch (sampled rollouts).

  ``train_batches`` draws batch k from ``fold_in(key(seed), k)``, so a resumed
  run continues the same stream. ``eval_batches`` is one fixed pass over
  ``num_eval`` instances (the landscape measure's samples, shape checks).

  Examples:
    >>> ds = GeneratedInstances((Task("tsp", 5), Task("kp", 4)), num_eval=6)
    >>> b = next(ds.train_batches(3, seed=0))
    >>> b.inputs["TSP5"]["locs"].shape, b.labels.shape, b.inputs["sample"].tolist()
    ((3, 5, 2), (3, 2), [1.0, 1.0, 1.0])
    >>> [int(b.weights.sum()) for b in ds.eval_batches(4)]
    [4, 2]
  """
  tasks: tuple[Task, ...]
  num_eval: int = 256
  eval_seed: int = 0

  def __len__(self) -> int:
    return self.num_eval

  def _batch(self, key: jax.Array, batch_size: int) -> data_lib.Batch:
    return data_lib.Batch(_inputs(self.tasks, key, batch_size, sample=True),
                          np.ones((batch_size, len(self.tasks)), np.float32),
                          np.ones(batch_size, np.float32))

  def train_batches(self, batch_size: int, seed: int, start: int = 0,
                    rows: slice | None = None) -> Iterator[data_lib.Batch]:
    key = jax.random.key(seed)
    step = start
    while True:
      batch = self._batch(jax.random.fold_in(key, step), batch_size)
      yield batch if rows is None else jax.tree.map(lambda x: x[rows], batch)
      step += 1

  def eval_batches(self, batch_size: int, rows: slice | None = None
                   ) -> Iterator[data_lib.Batch]:
    fixed = self._batch(jax.random.key(self.eval_seed), self.num_eval)
    dataset = data_lib.ArrayDataset(fixed.inputs, fixed.labels)
    return dataset.eval_batches(batch_size, rows)


def _progress(total: int, desc: str, quiet: bool):
  """A ``(done, total)`` callback printing progress lines."""
  bar = progress.Progress(total, desc, quiet)
  return lambda done, _: bar.update(done)


def fixed_instances(tasks: Sequence[Task], split: str, num: int, seed: int
                    ) -> dict[str, dict[str, np.ndarray]]:
  """Seeded instances of every task for a fixed split (``val`` or ``test``)."""
  return {t.name: instances_lib.generate_numpy(t, _split_seed(split, t, seed), num)
          for t in tasks}


def greedy_inputs(instances: dict[str, dict[str, np.ndarray]], num: int) -> dict:
  """Model inputs that decode ``instances`` greedily."""
  return {**instances, "key": np.zeros((num, 2), np.uint32),
          "sample": np.zeros(num, np.float32)}


def _gap(minimise: jax.Array, predictions, labels) -> jax.Array:
  """Gap (a fraction) of the best start against the reference in ``labels``: ``(batch, m)``."""
  objective = predictions["objective"]
  best = jnp.where(minimise, objective.min(-1), objective.max(-1))   # (m, B)
  reference = labels.T
  return (jnp.where(minimise, best - reference, reference - best) / reference).T


def solver_losses(minimise: np.ndarray):
  """Per-sample losses ``(batch, m)``: REINFORCE on sampled rows, 1 + gap on greedy ones.

  Sampled rows (training batches) get POMO's REINFORCE loss with the starts'
  mean as baseline; greedy rows (the labelled validation and test sets) get
  ``1 + gap``, so a network's reported test loss is its mean ratio to the
  reference objectives (the REINFORCE loss of greedy rollouts means nothing).

  Examples:
    >>> preds = {"objective": jnp.array([[[4.0, 5.0]], [[2.0, 3.0]]]),  # TSP, OP; 1 instance
    ...          "logp": jnp.zeros((2, 1, 2)), "sample": jnp.zeros(1)}
    >>> solver_losses(np.array([True, False]))(preds, jnp.array([[3.2, 4.0]])).tolist()
    [[1.25, 1.25]]
  """
  sign = jnp.where(jnp.asarray(minimise), -1.0, 1.0)[:, None, None]
  flags = jnp.asarray(minimise)[:, None]

  def sample_losses(predictions, labels):
    reward = sign * predictions["objective"]                        # (m, B, P)
    advantage = jax.lax.stop_gradient(reward - reward.mean(-1, keepdims=True))
    reinforce = -jnp.mean(advantage * predictions["logp"], -1).T
    sampled = jnp.asarray(predictions["sample"])[:, None] > 0
    return jnp.where(sampled, reinforce, 1.0 + _gap(flags, predictions, labels))
  return sample_losses


def optimality_gaps(minimise: np.ndarray):
  """Per-sample gap (%) of the best start against the reference in ``labels``: ``(batch, m)``.

  ``100 · (length − reference) / reference``, or ``100 · (reference − prize) / reference``.
  """
  flags = jnp.asarray(minimise)[:, None]
  return lambda predictions, labels: 100.0 * _gap(flags, predictions, labels)


def validation_score(model, minimise: np.ndarray, inputs: dict):
  """``params -> (m,)``: mean greedy length, or 1 / mean greedy prize, on ``inputs``."""
  minimise = jnp.asarray(minimise)
  inputs = jax.tree.map(jnp.asarray, inputs)

  def score(params):
    mean = model.apply({"params": params}, inputs)["objective"].mean((1, 2))
    return jnp.where(minimise, mean, 1.0 / mean)
  return score


@identity.records_definition(ignore=("cache_dir", "workers", "quiet"))
def cop(tasks: Sequence[str] = instances_lib.DEFAULT_TASKS, *, cache_dir: str,
        num_val: int = 16, num_test: int = 32, instance_seed: int = 0,
        reference_seconds_per_node: float = 0.01, workers: int | None = None, dim: int = 64,
        heads: int = 4, ff: int = 128, layers: int = 2, starts: int = 8,
        batch_size: int = 16, learning_rate: float = 1e-3, train_steps: int = 200,
        num_landscape: int = 64, quiet: bool = False) -> tasks_lib.TaskSet:
  """The routing TaskSet (see the module docstring).

  Args:
    tasks: e.g. ``("TSP20", "CVRP50")`` (:func:`instances.parse_task`).
    cache_dir: where reference objectives are cached (one file per task and split).
    num_val, num_test: fixed validation and test instances per task.
    instance_seed: seed of the validation and test instances.
    reference_seconds_per_node: the reference solver's time limit per instance is this
      times the task's size (0.2 s for 20 nodes, 0.5 s for 50 at the default).
    workers: reference solver processes (None: the solver module's default).
    dim, heads, ff, layers: the encoder (and decoder) sizes.
    starts: POMO starts per instance, at most the smallest task's node count.
    batch_size, learning_rate, train_steps: Adam training of every network.
    num_landscape: fixed training instances the landscape measure may read.
    quiet: no progress lines while references are solved.

  Raises:
    UserError: an unknown task, too many starts, a bad size.
  """
  from tgroup.benchmarks.cop import reference  # the solvers load only when references are made
  parsed = tuple(instances_lib.parse_task(name) for name in tasks)
  names = [t.name for t in parsed]
  if len(set(names)) != len(names):
    raise UserError(f"tasks must be distinct, got {names}")
  for name, value in (("dim", dim), ("heads", heads), ("ff", ff), ("layers", layers),
                      ("starts", starts), ("batch_size", batch_size), ("num_val", num_val),
                      ("num_test", num_test), ("train_steps", train_steps)):
    if value < 1:
      raise UserError(f"--{name} must be >= 1, got {value}")
  if dim % heads:
    raise UserError(f"--dim={dim} must be a multiple of --heads={heads}")
  smallest = min(parsed, key=lambda t: t.size)
  if starts > smallest.size:
    raise UserError(f"--starts={starts} exceeds the {smallest.size} nodes of {smallest.name}: "
                    "every start needs its own first node")
  if reference_seconds_per_node <= 0:
    raise UserError(f"--reference_seconds_per_node must be > 0, got {reference_seconds_per_node}")
  seconds = {t: reference_seconds_per_node * t.size for t in parsed}
  minimise = np.array([instances_lib.MINIMISE[t.problem] for t in parsed])
  model = model_lib.RoutingSolver(parsed, dim=dim, heads=heads, ff=ff, layers=layers,
                                  starts=starts)

  def labelled(split: str, num: int) -> data_lib.ArrayDataset:
    inst = fixed_instances(parsed, split, num, instance_seed)
    labels = np.stack([
        reference.references(
            os.path.join(cache_dir, f"reference_{split}_{t.name}_{instance_seed}.npz"),
            t.problem, inst[t.name], seconds[t], workers=workers,
            progress=_progress(num, f"{t.name} {split} references", quiet))
        for t in parsed], axis=1).astype(np.float32)
    return data_lib.ArrayDataset(greedy_inputs(inst, num), labels)

  val = labelled("val", num_val)
  test = labelled("test", num_test)
  taskset = tasks_lib.TaskSet(
      name="cop",
      tasks=tuple(names),
      model=model,
      sample_losses=solver_losses(minimise),
      sample_metrics=optimality_gaps(minimise),
      train=GeneratedInstances(parsed, num_eval=num_landscape),
      val=val,
      test=test,
      optimizer=optax.adam(learning_rate),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="gap_pct",
      lookahead_losses=validation_score(model, minimise, val.inputs),
      description=(f"routing/packing {', '.join(names)}; POMO REINFORCE, {starts} starts, "
                   f"encoder {layers}x{dim}; references: "
                   + "; ".join(f"{t.name}: {reference.describe(t.problem, seconds[t])}"
                               for t in parsed)),
  )
  return taskset
