"""Flags every launcher shares (DESIGN §6) and the one way launchers end.

A launcher defines its benchmark's flags, calls
``flags.adopt_module_key_flags(common)`` (so ``--helpshort`` lists these too),
builds a TaskSet and calls :func:`run` with its ``main``.
"""
from __future__ import annotations

import logging as std_logging
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from tgroup import pipeline
from tgroup.errors import UserError  # noqa: F401 (launchers raise it)
from tgroup.gains import CollectConfig
from tgroup.grouping import Constraints

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing); a "
                               "rerun with the same flags reuses its saved gains and networks.")
_METHODS = flags.DEFINE_list("methods", "principled,tag,stl,mtl_all",
                             f"Comma list among {', '.join(pipeline.METHODS)}. The first "
                             "grouping method fills groups.json and gains.json.")
_NUM_GROUPS = flags.DEFINE_integer(
    "num_groups", None, "Exact number of groups (networks). Unset: the launcher's default; "
    "0: the MIP chooses (use --principled_form=marginal).")
_MAX_GROUPS = flags.DEFINE_integer("max_groups", None, "At most this many groups.")
_MIN_GROUP_SIZE = flags.DEFINE_integer("min_group_size", 1, "Every group has >= this many tasks.")
_MAX_GROUP_SIZE = flags.DEFINE_integer("max_group_size", None,
                                       "Every group has <= this many tasks.")
_MUST_LINK = flags.DEFINE_list("must_link", [], "Pairs always grouped together: a:b,c:d.")
_CANNOT_LINK = flags.DEFINE_list("cannot_link", [], "Pairs never grouped together: a:b,c:d.")
_ALONE = flags.DEFINE_list("alone", [], "Tasks that must be trained alone: a,b.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, initialisation, batch order and "
                             "task draws.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None, "Caps every training run (collection and "
                                  "group networks) at this many steps, for smoke runs.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines and no results table.")
_PRINCIPLED_FORM = flags.DEFINE_enum(
    "principled_form", "self_pair", list(pipeline.PRINCIPLED_FORMS),
    "self_pair: Wang et al.'s gain with the self-pair control (needs a number of groups); "
    "marginal: what adding a task's gradient to a target's own step does (natural zero).")
_COLLECT_EVERY = flags.DEFINE_integer("collect_every", 1, "Collect gains every k training steps "
                                      "(lazy collection).")
_SAMPLE_TASKS = flags.DEFINE_integer("sample_tasks", None, "Draw this many tasks per collected "
                                     "step (fewer lookaheads); unset: all tasks.")
_SAMPLE_BIAS = flags.DEFINE_enum("sample_bias", "uniform", ["uniform", "rare"],
                                 "How tasks are drawn: uniformly or toward rarely drawn tasks.")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", ["auto", "map", "vmap"],
                              "How lookaheads are batched: lax.map, vmap, or auto (map on CPU, "
                              "vmap on accelerators).")
_MAP_BATCH_SIZE = flags.DEFINE_integer(
    "map_batch_size", None, "Combinations per lax.map iteration (unset: one at a time with "
    "--strategy=map; 3 with --strategy=auto on CPU, the fastest measured by launch.bench).")
_EVAL_SEEDS = flags.DEFINE_integer("eval_seeds", 1, "Train every group network with this many "
                                   "seeds (seed, seed+1, ...) and average.")


def _pairs(name: str, entries: list[str]) -> list[tuple[str, str]]:
  pairs = []
  for entry in entries:
    parts = entry.split(":")
    if len(parts) != 2 or not all(parts):
      raise UserError(f"--{name} entries must look like task_a:task_b, got {entry!r}")
    pairs.append((parts[0], parts[1]))
  return pairs


def constraints(default_num_groups: int | None = None) -> Constraints:
  """The grouping constraints given by the flags."""
  num_groups = _NUM_GROUPS.value if _NUM_GROUPS.value is not None else default_num_groups
  if num_groups is not None and num_groups < 0:
    raise UserError(f"--num_groups must be >= 0 (0: free), got {num_groups}")
  return Constraints(num_groups=num_groups or None, max_groups=_MAX_GROUPS.value,
                     min_group_size=_MIN_GROUP_SIZE.value, max_group_size=_MAX_GROUP_SIZE.value,
                     must_link=_pairs("must_link", _MUST_LINK.value),
                     cannot_link=_pairs("cannot_link", _CANNOT_LINK.value),
                     alone=_ALONE.value)


def seed() -> int:
  return _SEED.value


def capped_steps(steps: int) -> int:
  """``steps``, capped by ``--max_steps``."""
  if _MAX_STEPS.value is not None and _MAX_STEPS.value < 1:
    raise UserError(f"--max_steps must be >= 1, got {_MAX_STEPS.value}")
  return min(steps, _MAX_STEPS.value) if _MAX_STEPS.value else steps


def pipeline_config(default_num_groups: int | None, train_steps: int,
                    run_key: dict) -> pipeline.PipelineConfig:
  """A :class:`tgroup.pipeline.PipelineConfig` from the shared flags."""
  if _EVAL_SEEDS.value < 1:
    raise UserError(f"--eval_seeds must be >= 1, got {_EVAL_SEEDS.value}")
  steps = capped_steps(train_steps)
  collect = CollectConfig(steps=steps, collect_every=_COLLECT_EVERY.value,
                          sample_tasks=_SAMPLE_TASKS.value, sample_bias=_SAMPLE_BIAS.value,
                          strategy=_STRATEGY.value, map_batch_size=_MAP_BATCH_SIZE.value,
                          seed=_SEED.value, quiet=_QUIET.value)
  return pipeline.PipelineConfig(
      methods=tuple(m.strip() for m in _METHODS.value),
      constraints=constraints(default_num_groups),
      principled_form=_PRINCIPLED_FORM.value,
      collect=collect,
      eval_seeds=tuple(range(_SEED.value, _SEED.value + _EVAL_SEEDS.value)),
      train_steps=steps,
      quiet=_QUIET.value,
      run_key=run_key)


def workdir() -> str:
  if not _WORKDIR.value:
    raise UserError("--workdir is required")
  return _WORKDIR.value


def run(main: Callable[[list[str]], None]) -> None:
  """``app.run`` with the contract's error handling: a user's mistake is one line, exit 2."""

  def guarded(argv):
    if len(argv) > 1:
      _fail(f"unexpected arguments {argv[1:]} (flags look like --name=value)")
    if not _QUIET.value:
      logging.set_verbosity(logging.INFO)
    # JAX reports each accelerator plugin it did not find; that is not news on a CPU.
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
    try:
      main(argv)
    except UserError as e:
      _fail(str(e))

  app.run(guarded, flags_parser=_parse_flags)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(f"{e} (see --helpshort)")


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
