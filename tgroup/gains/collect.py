"""Transfer gains from one ordinary multi-task training run.

The run trains the all-tasks network on the sum of task losses exactly as it
would without collection; every ``collect_every`` steps a jitted collection step
reads the current parameters and optimizer state and accumulates gains.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from tgroup import progress
from tgroup import train
from tgroup.errors import UserError
from tgroup.gains import combinations
from tgroup.gains import lookahead
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
    sample_bias: ``uniform`` or ``rare`` (toward tasks drawn less so far).
    strategy: ``auto``, ``map`` or ``vmap`` over combinations.
    map_batch_size: combinations per ``lax.map`` iteration (None: one at a time
      under ``map``, a measured default under ``auto`` on CPU).
    seed: initialisation, batch order and task draws.
    quiet: no progress lines.
  """
  measures: tuple[str, ...] = ("principled",)
  steps: int | None = None
  collect_every: int = 1
  sample_tasks: int | None = None
  sample_bias: str = "uniform"
  strategy: str = "auto"
  map_batch_size: int | None = None
  seed: int = 0
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
    if self.sample_bias not in ("uniform", "rare"):
      raise UserError(f"sample_bias must be uniform or rare, got {self.sample_bias!r}")
    if self.strategy not in ("auto", "map", "vmap"):
      raise UserError(f"strategy must be auto, map or vmap, got {self.strategy!r}")
    if self.map_batch_size is not None and self.map_batch_size < 1:
      raise UserError(f"map_batch_size must be >= 1, got {self.map_batch_size}")

  def settings(self, taskset: TaskSet) -> dict:
    d = dataclasses.asdict(self)
    d.pop("quiet")
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
  return run_collection(taskset, config)[0]


def run_collection(taskset: TaskSet, config: CollectConfig) -> tuple[dict[str, Gains],
                                                                    train.TrainState]:
  """:func:`collect_gains` plus the final training state of the all-tasks network.

  The state is bitwise what the same run without collection would give.
  """
  config.validate(taskset.num_tasks)
  steps = config.steps or taskset.train_steps
  key = jax.random.key(config.seed)
  init_key, collect_key = jax.random.split(key)
  state = train.init_state(taskset, init_key)
  update_fn = jax.jit(train.make_update_fn(taskset), donate_argnums=0)
  collect_fn = jax.jit(lookahead.make_collect_step(
      taskset, config.measures, sample_tasks=config.sample_tasks,
      sample_bias=config.sample_bias, strategy=config.strategy,
      map_batch_size=config.map_batch_size))
  cstate = lookahead.init_collector(collect_key, taskset.num_tasks, config.measures)
  all_tasks = jnp.ones(taskset.num_tasks, jnp.float32)
  batches = taskset.train.train_batches(taskset.batch_size, seed=config.seed)
  bar = progress.Progress(steps, "collect", config.quiet)
  start = time.perf_counter()
  for step in range(steps):
    batch = next(batches)
    if step % config.collect_every == 0:
      cstate = collect_fn(cstate, state.params, state.opt_state, batch)
    state, losses = update_fn(state, batch, all_tasks)
    if (step + 1) % 100 == 0 or step + 1 == steps:
      train.check_finite(taskset, np.asarray(losses), all_tasks, step + 1)
      bar.update(step + 1)
  settings = config.settings(taskset)
  settings["seconds"] = round(time.perf_counter() - start, 3)
  gains = {name: finish(taskset.tasks, name, acc, settings)
           for name, acc in cstate.measures.items()}
  return gains, state


def finish(tasks, measure: str, acc: lookahead.GainSums, settings: dict) -> Gains:
  """Running sums → means (entries never collected stay 0 with count 0)."""
  sums, counts = np.asarray(acc.sums, np.float64), np.asarray(acc.counts)
  if not np.isfinite(sums).all():
    raise UserError(f"{measure} gains are not finite: a lookahead step diverged "
                    "(lower the learning rate)")
  means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
  settings = dict(settings, form=_FORMS[measure]) if measure in _FORMS else settings
  return Gains(tuple(tasks), measure, means, counts, settings)


_FORMS = {"principled": "self_pair", "principled_marginal": "marginal", "first_order": "self_pair"}
