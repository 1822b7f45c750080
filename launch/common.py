"""Flags every benchmark launcher shares (docs/contract.md), turned into a PipelineConfig.

A launcher defines its benchmark's flags, adopts these as key flags (so
``--helpshort`` lists them, see :func:`flag_modules`), builds a TaskSet and calls
``cli.run(main)``.
"""
from __future__ import annotations

import sys
from typing import Callable

from absl import flags
from absl import logging

from launch import cli
from launch import constraint_flags
from tgroup import distributed
from tgroup import mesh as mesh_lib
from tgroup import pipeline
from tgroup.errors import UserError
from tgroup.gains import CollectConfig
from tgroup.methods import CalibratedConfig, LandscapeConfig
from tgroup.resources import Resources
from tgroup.tasks import TaskSet

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing); a "
                               "rerun with the same flags reuses its saved gains and networks.")
_METHODS = flags.DEFINE_list(
    "methods", "principled,tag,stl,mtl_all",
    f"Comma list among {', '.join(pipeline.METHODS)}. The first grouping method fills "
    "groups.json and gains.json. hoa trains every pair and single task; oracle trains every "
    "task subset (2^m - 1 networks) and gives every method its regret; calibrated trains "
    "a few groups (--calibrated_networks) to fit a predictor on every signal; landscape trains "
    "nothing (per-sample gradients at initialisation, a task graph, GAT, Gaussian mixture).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, initialisation, batch order and "
                             "task draws.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None, "Caps every training run (collection and "
                                  "group networks) at this many steps, for smoke runs.")
_PRINCIPLED_FORM = flags.DEFINE_enum(
    "principled_form", "marginal", list(pipeline.PRINCIPLED_FORMS),
    "marginal (the default, chosen by launch.study): what adding a task's gradient to a "
    "target's own step does (natural zero); self_pair: Wang et al.'s gain with the self-pair "
    "control (the paper's form; needs a number of groups).")
_COLLECT_STEPS = flags.DEFINE_integer(
    "collect_steps", None, "Steps of the collection run (the all-task training the gains are "
    "measured on); unset: the training steps. Shorter runs measure the early, more informative "
    "steps (docs/results.md, Many tasks).")
_COLLECT_EVERY = flags.DEFINE_integer("collect_every", 1, "Collect gains every k training steps "
                                      "(lazy collection).")
_SAMPLE_TASKS = flags.DEFINE_integer("sample_tasks", None, "Draw this many tasks per collected "
                                     "step (fewer lookaheads); unset: all tasks.")
_SAMPLE_BIAS = flags.DEFINE_enum(
    "sample_bias", "uniform", ["uniform", "rare", "pairs"],
    "How tasks are drawn: uniformly, toward rarely drawn tasks, or pairs (a fixed cycle of "
    "draws in which every pair of tasks is drawn together once: even pair counts).")
_MIN_PAIR_COUNT = flags.DEFINE_integer(
    "min_pair_count", None, "Every pair of tasks must be collected in at least this many steps; "
    "with --sample_tasks it needs --sample_bias=pairs, and a run too short for it is refused "
    "(the message says how many steps it needs). Unset: no minimum.")
_MAX_LOOKAHEADS = flags.DEFINE_integer(
    "max_lookaheads", None, "Above this many lookaheads per collected step (m(m+1)/2 for "
    "principled with m tasks drawn), principled gains are estimated to first order instead "
    "(one Jacobian, no lookahead); gains.json says which. Unset: always exact.")
_LOOKAHEAD = flags.DEFINE_enum(
    "lookahead", "auto", ["auto", "shared", "general"],
    "How each lookahead step is taken: shared (work shared across combinations; needs an "
    "optimizer whose update is affine in the gradient, such as SGD with momentum), general "
    "(the optimizer's update per combination), or auto (shared where it qualifies and pays).")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", ["auto", "map", "vmap"],
                              "How lookaheads are batched: lax.map, vmap, or auto (map on CPU, "
                              "vmap on accelerators).")
_MAP_BATCH_SIZE = flags.DEFINE_integer(
    "map_batch_size", None, "Combinations per lax.map iteration (unset: one at a time with "
    "--strategy=map; 3 with --strategy=auto on CPU, the fastest measured by launch.bench).")
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 500, "Save the collection run's state every this many steps (atomic "
    "writes under WORKDIR/checkpoints/); a rerun of the same command resumes from it with "
    "identical results. 0: write none. Group and oracle networks are saved as each "
    "chunk finishes regardless.")
_RANDOM_DRAWS = flags.DEFINE_integer("random_draws", 5, "Random partitions drawn for the "
                                     "random method (mean and spread are reported).")
_MAX_ORACLE_NETWORKS = flags.DEFINE_integer(
    "max_oracle_networks", 1023, "Refuse the oracle when it would train more than this many "
    "networks (2^m - 1 for m tasks).")
_LANDSCAPE_SAMPLES = flags.DEFINE_integer("landscape_samples", 256, "Shared training samples "
                                          "of the landscape dissimilarity.")
_LANDSCAPE_INITS = flags.DEFINE_integer("landscape_inits", 1, "Random initialisations the "
                                        "landscape dissimilarity averages.")
_LANDSCAPE_KNN = flags.DEFINE_integer("landscape_knn", None, "Sparsify the landscape task graph "
                                      "to each task's k nearest neighbours (unset: dense).")
_LANDSCAPE_HEAD_INIT = flags.DEFINE_enum(
    "landscape_head_init", "same", ["same", "independent"],
    "Heads of the landscape's random θ_0: all a copy of one (same; independent random heads "
    "hide every task relation at initialisation, README) or each its own draw.")
_LANDSCAPE_WARMUP_STEPS = flags.DEFINE_integer(
    "landscape_warmup_steps", 0, "0: the landscape's θ_0 is a random initialisation (the "
    "paper's; the dissimilarity is then a statistic of the labels, docs/design.md §2.6). N > 0: "
    "θ_0 is the all-task network after N training steps, which carries the model.")
_CALIBRATED_NETWORKS = flags.DEFINE_integer(
    "calibrated_networks", None, "Group networks of two or more tasks calibrated may train "
    "(beyond the single-task networks every run trains); unset: a third of the m(m-1)/2 pairs "
    "hoa trains.")
_CALIBRATED_KAPPA = flags.DEFINE_float(
    "calibrated_kappa", 2.0, "Standard deviations of calibrated's predictor it is optimistic "
    "by while choosing networks to train, and pessimistic by when grouping.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 16, "Group networks trained at once under "
                                   "vmap (results depend on it in the last bits).")
_MESH = flags.DEFINE_string(
    "mesh", None, "Run on several devices: AXIS:N[,AXIS:N] over the axes data (each batch "
    "split), combos (a collection step's lookaheads split) and networks (a chunk of group "
    "networks split), whose sizes multiply to the number of devices; or auto (every device, "
    "on the axis that suits each stage: docs/accelerators.md). Unset: one device.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "One run over several processes (hosts): start the same command in "
    "each; joins JAX's distributed runtime, whose coordinator, process count and this "
    "process's id come from --coordinator_address, --num_processes and --process_id or, "
    "unset, from the environment Cloud TPU VMs and SLURM set. Only process 0 writes files. "
    "Without --mesh: --mesh=auto.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "With --distributed: HOST:PORT "
                                   "of process 0, where every process joins.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: how many "
                                      "processes the run has.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process's id, "
                                   "0 to --num_processes - 1.")
_INIT_TIMEOUT = flags.DEFINE_integer("initialization_timeout", 300, "With --distributed: "
                                     "seconds to wait for every process to join.")
_GROUPING_TIME_LIMIT = flags.DEFINE_float(
    "grouping_time_limit", None, "Seconds each grouping MIP may take (column generation "
    "included); groups.json then carries the gap it reached. Unset: the solver's own limits "
    "(column generation stops after 60 s, and each CBC solve over its columns after 60 s).")
_EVAL_SEEDS = flags.DEFINE_integer("eval_seeds", 1, "Train every group network with this many "
                                   "seeds (seed, seed+1, ...) and average.")


def flag_modules():
  """The modules whose flags every benchmark launcher adopts as key flags.

  A launcher runs ``for m in common.flag_modules(): flags.adopt_module_key_flags(m)``
  at import (absl adopts into the calling module, so the call must be there).
  """
  return (sys.modules[__name__], cli, constraint_flags)


def seed() -> int:
  """``--seed``, checked (>= 0) on every read, so no launcher can use it unchecked."""
  return cli.check_seed(_SEED.value)


def check_at_least_one(*holders: flags.FlagHolder) -> None:
  """A UserError naming the first of these integer flags that is below 1."""
  for holder in holders:
    if holder.value < 1:
      raise UserError(f"--{holder.name} must be >= 1, got {holder.value}")


def capped_steps(steps: int) -> int:
  """``steps``, capped by ``--max_steps``."""
  if _MAX_STEPS.value is not None and _MAX_STEPS.value < 1:
    raise UserError(f"--max_steps must be >= 1, got {_MAX_STEPS.value}")
  return min(steps, _MAX_STEPS.value) if _MAX_STEPS.value else steps


def pipeline_config(default_num_groups: int | None, train_steps: int) -> pipeline.PipelineConfig:
  """A :class:`tgroup.pipeline.PipelineConfig` from the shared flags.

  Nothing here names the run: saved gains and networks are reused by an
  identity derived from the TaskSet's definition and these settings
  (:mod:`tgroup.identity`).
  """
  check_at_least_one(_EVAL_SEEDS)
  if _CHECKPOINT_EVERY.value < 0:
    raise UserError(f"--checkpoint_every must be >= 0 (0: no checkpoints), "
                    f"got {_CHECKPOINT_EVERY.value}")
  steps = capped_steps(train_steps)
  if _COLLECT_STEPS.value is not None and _COLLECT_STEPS.value < 1:
    raise UserError(f"--collect_steps must be >= 1, got {_COLLECT_STEPS.value}")
  collect_steps = steps if _COLLECT_STEPS.value is None else capped_steps(_COLLECT_STEPS.value)
  collect = CollectConfig(steps=collect_steps, collect_every=_COLLECT_EVERY.value,
                          sample_tasks=_SAMPLE_TASKS.value, sample_bias=_SAMPLE_BIAS.value,
                          min_pair_count=_MIN_PAIR_COUNT.value,
                          max_lookaheads=_MAX_LOOKAHEADS.value, lookahead=_LOOKAHEAD.value,
                          strategy=_STRATEGY.value, map_batch_size=_MAP_BATCH_SIZE.value,
                          seed=seed(), checkpoint_every=_CHECKPOINT_EVERY.value or None,
                          quiet=quiet())
  return pipeline.PipelineConfig(
      methods=tuple(m.strip() for m in _METHODS.value),
      constraints=constraint_flags.constraints(default_num_groups),
      principled_form=_PRINCIPLED_FORM.value,
      collect=collect,
      eval_seeds=tuple(range(seed(), seed() + _EVAL_SEEDS.value)),
      train_steps=steps,
      chunk_size=_CHUNK_SIZE.value,
      random_draws=_RANDOM_DRAWS.value,
      max_oracle_networks=_MAX_ORACLE_NETWORKS.value,
      landscape=LandscapeConfig(samples=_LANDSCAPE_SAMPLES.value, inits=_LANDSCAPE_INITS.value,
                                knn=_LANDSCAPE_KNN.value, head_init=_LANDSCAPE_HEAD_INIT.value,
                                warmup_steps=_LANDSCAPE_WARMUP_STEPS.value),
      calibrated=CalibratedConfig(networks=_CALIBRATED_NETWORKS.value,
                                  kappa=_CALIBRATED_KAPPA.value),
      quiet=quiet(),
      resources=Resources(**constraint_flags.resource_flags()),
      mesh=mesh(),
      grouping_time_limit_s=_GROUPING_TIME_LIMIT.value)


def quiet() -> bool:
  """``--quiet``, or a distributed run's process other than 0 (process 0 speaks for all)."""
  return cli.QUIET.value or distributed.process_index() != 0


def mesh() -> str | None:
  """``--mesh``, checked and normalised; ``auto`` for a distributed run without one."""
  spec = mesh_lib.MeshSpec.parse(_MESH.value)
  if spec is None:
    return "auto" if _DISTRIBUTED.value else None
  return str(spec)


def start_distributed() -> None:
  """With ``--distributed``, joins the distributed run; its flags are checked before."""
  if not _DISTRIBUTED.value:
    given = [f.name for f in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID) if f.value is not None]
    if given:
      raise UserError(f"--{', --'.join(given)} only with --distributed")
    return
  distributed.initialize(distributed.DistributedConfig(
      _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _INIT_TIMEOUT.value))
  if distributed.process_index() != 0:
    logging.set_verbosity(logging.WARNING)


def main_of(build: Callable[[], tuple[TaskSet, pipeline.PipelineConfig]]
            ) -> Callable[[list[str]], None]:
  """A benchmark launcher's ``main``: ``--workdir`` checked, then ``build()``, then the pipeline.

  The workdir is checked before ``build`` reads any data, so a typo in it costs
  nothing. Run it with :func:`launch.cli.run`, which turns a user's mistake into
  one line and exit status 2.
  """
  def main(argv):
    del argv
    try:
      start_distributed()
      where = workdir()
      pipeline.run_pipeline(*build(), where)
    except UserError:
      # Once joined, every process of a distributed run meets the same mistake:
      # process 0 says it. Before, each process's own flags may be wrong.
      if distributed.process_index() != 0:
        sys.exit(2)
      raise

  return main


def workdir() -> str:
  """``--workdir``, checked writable before any work (:func:`launch.cli.check_workdir`)."""
  if not _WORKDIR.value:
    raise UserError("--workdir is required")
  return cli.check_workdir(_WORKDIR.value)
