"""Transfer gains from one ordinary multi-task training run.

The run trains the all-tasks network on the sum of task losses exactly as it
would without collection; every ``collect_every`` steps a jitted collection step
reads the current parameters and optimizer state and accumulates gains.

With a checkpoint directory the run saves, every ``checkpoint_every`` steps, all
it carries between steps (the training state, the collector's sums, counts,
draws and PRNG key, the gains history so far, and the step, which is also the
data position) and resumes from there when called again: the resumed run replays
the same steps on the same batches, so its gains, history and final state are
bitwise those of an uninterrupted run (on a deterministic backend such as the
CPU). A checkpoint is written only after its state was checked finite, so a run
that diverges leaves the last good checkpoint on disk.

The run also records every measure's running means at a few evenly spaced steps
(:mod:`tgroup.gains.history`): how early the ranking of the gains settles.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import inspect
import os
import time
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from tgroup import checkpoint
from tgroup import distributed
from tgroup import identity as identity_lib
from tgroup import mesh as mesh_lib
from tgroup import progress
from tgroup import train
from tgroup.errors import NonFiniteLossError, UserError
from tgroup.gains import combinations
from tgroup.gains import history as history_lib
from tgroup.gains import lookahead
from tgroup.gains import schedule
from tgroup.gains import shared_work
from tgroup.gains.gains import Gains
from tgroup.tasks import TaskSet


@dataclasses.dataclass(frozen=True)
class CollectConfig:
  """How gains are collected.

  Attributes:
    measures: names among ``principled``, ``principled_marginal``, ``tag``,
      ``cosine``, ``first_order`` (see :mod:`tgroup.gains.lookahead`).
    steps: training steps of the collection run (None: the TaskSet's default).
    collect_every: collect at steps 0, k, 2k, ... (lazy collection).
    sample_tasks: tasks drawn per collected step (None: all; fewer lookaheads).
    sample_bias: ``uniform``, ``rare`` (toward tasks drawn less so far) or
      ``pairs`` (a fixed cycle of draws in which every pair of tasks is drawn
      together once, :mod:`tgroup.gains.schedule`: even pair counts).
    min_pair_count: every pair of tasks must be collected in at least this many
      steps (None: no minimum). With ``sample_tasks`` it needs ``pairs`` draws,
      and a run whose steps cannot reach it is refused before it starts.
    max_lookaheads: above this many lookaheads per collected step, ``principled``
      gains are estimated to first order (the ``first_order`` measure's values:
      one Jacobian, no lookahead); the gains' settings say so
      (``principled_estimate``). None: always exact.
    strategy: ``auto``, ``map`` or ``vmap`` over combinations.
    map_batch_size: combinations evaluated together, as one vmapped chunk:
      per ``lax.map`` iteration under ``map`` (None: one at a time; a measured
      default under ``auto`` on CPU), per chunk under ``vmap`` (None: as many as
      fit :data:`tgroup.gains.lookahead.VMAP_CHUNK_BYTES`).
    lookahead: ``auto``, ``shared`` or ``general``: how each combination's step
      is taken (:mod:`tgroup.gains.shared_work`). ``shared`` needs an optimizer
      whose update is affine in the gradient (SGD, momentum, weight decay,
      schedules) and shares work across combinations; ``general`` calls the
      optimizer per combination; ``auto`` probes the optimizer once and picks.
      The path taken (and, for ``general``, why) is recorded in the gains'
      settings.
    seed: initialisation, batch order and task draws.
    mesh: the devices to run on, ``AXIS:N[,AXIS:N]`` or ``auto``
      (:mod:`tgroup.mesh`): the batch split over ``data``, the lookaheads over
      ``combos``; None: one device.
    checkpoint_every: with a checkpoint directory (see :func:`run_collection`),
      save the run's state every this many steps (None: never). Does not change
      the gains, so it is not part of :meth:`settings`.
    quiet: no progress lines.
  """
  measures: tuple[str, ...] = ("principled",)
  steps: int | None = None
  collect_every: int = 1
  sample_tasks: int | None = None
  sample_bias: str = "uniform"
  min_pair_count: int | None = None
  max_lookaheads: int | None = None
  strategy: str = "auto"
  map_batch_size: int | None = None
  lookahead: str = "auto"
  seed: int = 0
  mesh: str | None = None
  checkpoint_every: int | None = None
  quiet: bool = False

  def validate(self, num_tasks: int) -> None:
    """One clear UserError per bad setting."""
    unknown = set(self.measures) - set(combinations.MEASURES)
    if not self.measures or unknown:
      raise UserError(f"unknown measure(s) {sorted(unknown)}; known: {list(combinations.MEASURES)}")
    if self.steps is not None and self.steps < 1:
      raise UserError(f"collection steps must be >= 1, got {self.steps}")
    if self.collect_every < 1:
      raise UserError(f"collect_every must be >= 1, got {self.collect_every}")
    if self.sample_tasks is not None and not 2 <= self.sample_tasks <= num_tasks:
      raise UserError(f"sample_tasks must be between 2 and the {num_tasks} tasks, "
                      f"got {self.sample_tasks}")
    if self.sample_bias not in ("uniform", "rare", "pairs"):
      raise UserError(f"sample_bias must be uniform, rare or pairs, got {self.sample_bias!r}")
    if self.min_pair_count is not None:
      if self.min_pair_count < 1:
        raise UserError(f"min_pair_count must be >= 1, got {self.min_pair_count}")
      if self.sampled(num_tasks) and self.sample_bias != "pairs":
        raise UserError(f"min_pair_count with sample_tasks={self.sample_tasks} needs "
                        f"sample_bias=pairs (the draws that guarantee pair counts), "
                        f"got {self.sample_bias}")
    if self.max_lookaheads is not None and self.max_lookaheads < 1:
      raise UserError(f"max_lookaheads must be >= 1, got {self.max_lookaheads}")
    if self.strategy not in ("auto", "map", "vmap"):
      raise UserError(f"strategy must be auto, map or vmap, got {self.strategy!r}")
    if self.map_batch_size is not None and self.map_batch_size < 1:
      raise UserError(f"map_batch_size must be >= 1, got {self.map_batch_size}")
    if self.lookahead not in shared_work.LOOKAHEADS:
      raise UserError(f"lookahead must be auto, shared or general, got {self.lookahead!r}")
    if self.checkpoint_every is not None and self.checkpoint_every < 1:
      raise UserError(f"checkpoint_every must be >= 1 (or None: no checkpoints), "
                      f"got {self.checkpoint_every}")

  def sampled(self, num_tasks: int) -> bool:
    """Whether fewer than all tasks are drawn per collected step."""
    return self.sample_tasks is not None and self.sample_tasks < num_tasks

  def round_length(self, num_tasks: int) -> int:
    """Collected steps in which every pair is drawn together at least once."""
    return len(schedule.pair_cover(num_tasks, self.sample_tasks)) if self.sampled(num_tasks) else 1

  def steps_for_pair_count(self, num_tasks: int) -> int | None:
    """Training steps the run needs for ``min_pair_count`` (None without one).

    Examples:
      >>> CollectConfig(sample_tasks=3, sample_bias="pairs", min_pair_count=2,
      ...               collect_every=2).steps_for_pair_count(9)   # 14 draws a round
      55
    """
    if self.min_pair_count is None:
      return None
    return schedule.steps_for_pair_count(self.round_length(num_tasks), self.min_pair_count,
                                         self.collect_every)

  def check_pair_count(self, num_tasks: int, steps: int) -> None:
    """A UserError when ``steps`` cannot give every pair ``min_pair_count`` collected steps."""
    needed = self.steps_for_pair_count(num_tasks)
    if needed is not None and steps < needed:
      how = (f"{self.sample_tasks} of {num_tasks} tasks per step, a round of "
             f"{self.round_length(num_tasks)} draws holds every pair"
             if self.sampled(num_tasks) else "every task drawn at every collected step")
      raise UserError(f"min_pair_count={self.min_pair_count} needs {needed} training steps "
                      f"({how}; collect_every={self.collect_every}), but the run has {steps}")

  def principled_estimate(self, num_tasks: int) -> tuple[str, str | None]:
    """``(lookahead | first_order, why)``: how ``principled`` gains are collected.

    Examples:
      >>> CollectConfig(max_lookaheads=100).principled_estimate(20)
      ('first_order', '210 lookaheads per collected step exceed max_lookaheads=100')
      >>> CollectConfig(max_lookaheads=100).principled_estimate(9)
      ('lookahead', None)
    """
    if self.max_lookaheads is None or "principled" not in self.measures:
      return "lookahead", None
    s = self.sample_tasks if self.sampled(num_tasks) else num_tasks
    k = combinations.layout(s, self.measures).num_lookaheads
    if k <= self.max_lookaheads:
      return "lookahead", None
    return "first_order", (f"{k} lookaheads per collected step exceed "
                           f"max_lookaheads={self.max_lookaheads}")

  def settings(self, taskset: TaskSet) -> dict:
    d = dataclasses.asdict(self)
    d.pop("quiet")
    d.pop("checkpoint_every")
    for name in ("min_pair_count", "max_lookaheads"):  # unset: earlier versions' identities
      if d[name] is None:
        d.pop(name)
    estimate, why = self.principled_estimate(len(taskset.tasks))
    if estimate != "lookahead":
      d["principled_estimate"], d["principled_estimate_reason"] = estimate, why
    if self.mesh is None:  # one device: the settings (and identities) of earlier versions
      d.pop("mesh")
    if self.lookahead == "auto":  # likewise; the path taken joins the gains' settings
      d.pop("lookahead")          # (run_collection), equal to rounding either way
    d["steps"] = self.steps or taskset.train_steps
    d["strategy"], d["map_batch_size"] = lookahead.resolve_strategy(self.strategy,
                                                                     self.map_batch_size)
    d["measures"] = list(self.measures)
    return d


def collect_gains(taskset: TaskSet, config: CollectConfig = CollectConfig()) -> dict[str, Gains]:
  """Trains the all-tasks network and returns the gains of each requested measure.

  Gains only: see :func:`run_collection` for the trained state too.

  Examples:
    >>> from tgroup.benchmarks.synthetic import synthetic
    >>> ts = synthetic(2, 2, num_train=256, num_val=64, num_test=64, batch_size=64)
    >>> out = collect_gains(ts, CollectConfig(measures=("principled", "tag"), steps=3,
    ...                                       quiet=True))
    >>> out["principled"].gains.shape, int(out["tag"].counts[0, 1])
    ((4, 4), 3)
  """
  return run_collection(taskset, config).gains


class Collection(NamedTuple):
  """What a collection run returns (dicts keyed by measure).

  Attributes:
    gains: the :class:`Gains` of each measure.
    state: the all-tasks network's final :class:`tgroup.train.TrainState`,
      bitwise what the same run without collection would give.
    histories: each measure's :class:`~tgroup.gains.history.GainsHistory`
      (running means at :func:`~tgroup.gains.history.snapshot_steps`).
  """
  gains: dict[str, Gains]
  state: train.TrainState
  histories: dict[str, history_lib.GainsHistory]


def run_collection(taskset: TaskSet, config: CollectConfig, *, checkpoint_dir: str | None = None,
                   identity=None) -> Collection:
  """:func:`collect_gains` plus the trained state and the gains histories.

  Args:
    taskset: the problem.
    config: collection settings.
    checkpoint_dir: where the run's checkpoint lives (``collect.npz``). A
      checkpoint found there is resumed; a new one is written every
      ``config.checkpoint_every`` steps (atomically). None: no checkpoints. The
      checkpoint is left in place at the end: delete it with
      :func:`clear_checkpoint` once the gains are saved.
    identity: JSON-able settings that identify the problem beyond ``config``
      and the task names (e.g. a launcher's benchmark flags); its hash joins the
      checkpoint's fingerprint, so a checkpoint of another run is refused.

  Returns:
    A :class:`Collection`: ``(gains, state, histories)``.

  Raises:
    UserError: a bad setting, or a checkpoint in ``checkpoint_dir`` that is
      corrupted or belongs to another run (the message names the file).
    NonFiniteLossError: a training loss or a gain became NaN or infinite (the
      message names the task or measure and the step); the checkpoint on disk,
      if any, is the last one whose state was finite.
  """
  config.validate(taskset.num_tasks)
  taskset.check()
  if taskset.num_tasks < 2:
    raise UserError(f"gains between tasks need at least two tasks; the TaskSet has only "
                    f"{taskset.tasks[0]!r}")
  steps = config.steps or taskset.train_steps
  config.check_pair_count(taskset.num_tasks, steps)
  key = jax.random.key(config.seed)
  init_key, collect_key = jax.random.split(key)
  state = train.init_state(taskset, init_key)
  mesh = mesh_lib.stage_mesh(config.mesh, "collect", batch_size=taskset.batch_size)
  update_fn = jax.jit(train.make_update_fn(taskset), donate_argnums=0)
  collect_step = lookahead.make_collect_step(
      taskset, config.measures, sample_tasks=config.sample_tasks,
      sample_bias=config.sample_bias, strategy=config.strategy,
      map_batch_size=config.map_batch_size, mesh=mesh, lookahead=config.lookahead,
      principled_estimate=config.principled_estimate(taskset.num_tasks)[0])
  collect_fn = jax.jit(collect_step)
  cstate = lookahead.init_collector(collect_key, taskset.num_tasks, config.measures)
  snapshot_at = {s: k for k, s in enumerate(history_lib.snapshot_steps(steps))}
  snapshots = _empty_snapshots(cstate, len(snapshot_at))
  settings = config.settings(taskset)
  saver = None
  first, earlier_seconds = 0, 0.0
  if checkpoint_dir is not None:
    saver = _Checkpoint(checkpoint_dir, {
        "tasks": list(taskset.tasks), "settings": dict(settings),
        "identity": None if identity is None else identity_lib.digest(identity)})
    resumed = saver.restore((state, cstate, snapshots))
    if resumed is not None:
      (state, cstate, snapshots), first, earlier_seconds = resumed
      snapshots = jax.tree.map(np.array, snapshots)  # writable host copies
      if not config.quiet:
        logging.info("resuming collection at step %d/%d from %s", first, steps, saver.path)
  all_tasks = jnp.ones(taskset.num_tasks, jnp.float32)
  if mesh is not None:  # the run's state on every device; each batch split over data
    state, cstate, all_tasks = mesh_lib.put((state, cstate, all_tasks),
                                            mesh_lib.replicated(mesh))
  batches = _batches_from(taskset.train, taskset.batch_size, config.seed, first,
                          mesh_lib.load_rows(mesh, taskset.batch_size))
  bar = progress.Progress(steps, "collect", config.quiet, initial=first)
  start = time.perf_counter()
  for step in range(first, steps):
    batch = mesh_lib.put_batch(next(batches), mesh, taskset.batch_size)
    if step % config.collect_every == 0:
      cstate = mesh_lib.settle(collect_fn(cstate, state.params, state.opt_state, batch), mesh)
    state, losses = mesh_lib.settle(update_fn(state, batch, all_tasks), mesh)
    if step + 1 in snapshot_at:
      for name, acc in cstate.measures.items():
        snapshots[name].sums[snapshot_at[step + 1]] = np.asarray(acc.sums)
        snapshots[name].counts[snapshot_at[step + 1]] = np.asarray(acc.counts)
    report = (step + 1) % 100 == 0 or step + 1 == steps
    save = (saver is not None and config.checkpoint_every
            and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps)
    if report or save:
      train.check_finite(taskset, np.asarray(losses), all_tasks, step + 1,
                         context="collection run")
    if report:
      bar.update(step + 1)
    if save:
      # Only a finite state is saved: a run that diverges keeps its last good checkpoint.
      _check_state_finite(taskset, state, cstate, batch, step + 1)
      saver.save((state, cstate, snapshots), step + 1,
                 earlier_seconds + time.perf_counter() - start)
  settings["seconds"] = round(earlier_seconds + time.perf_counter() - start, 3)
  settings.update(collect_step.plan.settings())  # which lookahead path ran, and why
  settings["pair_counts"] = _pair_counts(cstate)
  gains = {name: finish(taskset.tasks, name, acc, settings)
           for name, acc in cstate.measures.items()}
  steps_array = np.array(sorted(snapshot_at))
  histories = {name: history_lib.GainsHistory(
      tuple(taskset.tasks), name, steps_array, _means(snap.sums, snap.counts), snap.counts)
               for name, snap in snapshots.items()}
  return Collection(gains, state, histories)


def _pair_counts(cstate: lookahead.CollectorState) -> dict[str, float]:
  """Fewest, mean and most collected steps over the pairs of distinct tasks.

  Every measure is collected on the same drawn tasks, so the first measure's
  off-diagonal counts are the pairs' (principled_marginal collects no diagonal).
  """
  counts = np.asarray(next(iter(cstate.measures.values())).counts)
  off = counts[~np.eye(len(counts), dtype=bool)]
  return {"min": int(off.min()), "mean": round(float(off.mean()), 3), "max": int(off.max())}


def _empty_snapshots(cstate: lookahead.CollectorState, points: int) -> dict:
  """Host buffers for every measure's running sums and counts at ``points`` steps.

  Fixed-size (not appended to) so a checkpoint's template has the same shapes
  at every step; stored in the accumulators' dtypes, so a resumed history is
  bitwise an uninterrupted one.
  """
  return {name: lookahead.GainSums(
      np.zeros((points,) + acc.sums.shape, acc.sums.dtype),
      np.zeros((points,) + acc.counts.shape, acc.counts.dtype))
          for name, acc in cstate.measures.items()}


def _means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
  sums = np.asarray(sums, np.float64)
  return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves])) if leaves else True


def _check_state_finite(taskset: TaskSet, state: train.TrainState,
                        cstate: lookahead.CollectorState, batch, step: int) -> None:
  """Raises :class:`NonFiniteLossError` if anything a checkpoint would hold is not finite.

  The training losses of ``step`` were computed before its update, so the
  parameters that update produced can be non-finite while those losses were
  finite: then the losses of the new parameters on the same batch name the task.
  """
  sums = {name: acc.sums for name, acc in cstate.measures.items()}
  if bool(_all_finite((state.params, state.opt_state, sums))):
    return
  losses = jax.jit(taskset.task_losses)(state.params, batch)
  train.check_finite(taskset, np.asarray(losses), np.ones(taskset.num_tasks), step,
                     context="collection run")
  for name, acc in sums.items():
    if not np.isfinite(np.asarray(acc)).all():
      raise NonFiniteLossError(f"{name} gains are not finite by step {step}: a lookahead step "
                               "diverged (lower the learning rate)")
  raise NonFiniteLossError(f"the collection run's parameters or optimizer state are not finite "
                           f"by step {step} (its losses still are); lower the learning rate")


CHECKPOINT_FILE = "collect.npz"


class _Checkpoint:
  """The one checkpoint file of a collection run and its fingerprint."""

  def __init__(self, directory: str, fingerprint: dict):
    self.path = os.path.join(directory, CHECKPOINT_FILE)
    self.fingerprint = fingerprint

  def restore(self, like) -> tuple[object, int, float] | None:
    """``(state, step, seconds so far)`` of a saved run, or None without a checkpoint."""
    if not os.path.exists(self.path):
      return None
    tree, record = checkpoint.restore(self.path, like, self.fingerprint)
    return tree, int(record["step"]), float(record.get("seconds", 0.0))

  def save(self, tree, step: int, seconds: float) -> None:
    checkpoint.save(self.path, tree, {"fingerprint": self.fingerprint, "step": step,
                                      "seconds": round(seconds, 3)})


def clear_checkpoint(checkpoint_dir: str, root: str | None = None) -> None:
  """Deletes a collection checkpoint (and temporary files a killed write left behind).

  Then removes ``checkpoint_dir`` if empty, and its parents up to (not including)
  ``root`` while they are empty. In a distributed run, only process 0 (the one
  that writes) deletes.
  """
  if not distributed.writes_files():
    return
  for path in [os.path.join(checkpoint_dir, CHECKPOINT_FILE)] + glob.glob(
      os.path.join(checkpoint_dir, f".{CHECKPOINT_FILE}.*.tmp")):
    if os.path.exists(path):
      os.unlink(path)
  directory = os.path.abspath(checkpoint_dir)
  stop = os.path.abspath(root) if root is not None else None
  while True:
    try:
      os.rmdir(directory)
    except OSError:  # not empty (another run's checkpoint) or already gone
      return
    directory = os.path.dirname(directory)
    if stop is None or directory == stop or not directory.startswith(stop + os.sep):
      return


def _batches_from(dataset, batch_size: int, seed: int, start: int, rows: slice | None = None):
  """The dataset's training stream from batch ``start`` on, ``rows`` of each batch.

  Datasets whose ``train_batches`` takes ``start`` skip without reading (see
  :class:`tgroup.data.ArrayDataset`); others, e.g. a user's loader with only
  ``(batch_size, seed)``, are advanced by drawing and discarding batches.
  ``rows``: see :func:`tgroup.mesh.read`.
  """
  stream = functools.partial(dataset.train_batches, batch_size, seed=seed)
  if start and "start" in inspect.signature(dataset.train_batches).parameters:
    stream, start = functools.partial(stream, start=start), 0
  batches = mesh_lib.read(stream, rows)
  for _ in range(start):
    next(batches)
  return batches


def finish(tasks, measure: str, acc: lookahead.GainSums, settings: dict) -> Gains:
  """Running sums → means (entries never collected stay 0 with count 0)."""
  sums, counts = np.asarray(acc.sums, np.float64), np.asarray(acc.counts)
  if not np.isfinite(sums).all():
    raise NonFiniteLossError(f"{measure} gains are not finite: a lookahead step diverged "
                             "(lower the learning rate)")
  means = _means(sums, counts)
  settings = dict(settings, form=_FORMS[measure]) if measure in _FORMS else settings
  return Gains(tuple(tasks), measure, means, counts, settings)


_FORMS = {"principled": "self_pair", "principled_marginal": "marginal", "first_order": "self_pair"}
