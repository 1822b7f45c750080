r"""Routing and packing problems, one task per problem and size: gains → groups → compare.

The problems, model, training and scores are described in
:mod:`tgroup.benchmarks.cop.benchmark`. With defaults it trains one solver on
the six tasks of the principled-grouping paper (TSP20, TSP50, CVRP20, CVRP50,
OP20, OP50), briefly, so that it runs on a CPU in minutes:

  python -m launch.cop --workdir=/tmp/tgroup_cop

Reference objectives of the fixed validation (16 instances per task) and test
(32 per task) sets come from OR-Tools' routing solver for TSP, CVRP and OP
(guided local search; for OP an iterated greedy descent) within
--reference_seconds_per_node times the task's size per instance, and from an
exact MIP (CBC) for KP; they are computed once and cached in WORKDIR. Every network
trains for 100 Adam steps of 16 instances × 8 POMO starts, a small encoder
(2 layers of width 64): far from converged solvers (gaps of 10-30 %), enough to
tell which tasks help each other early in training. Gains are scored on the
validation objective (greedy rollouts), collected every 5th step.

Paper scale, on an accelerator (the POMO architecture and a long run):

  python -m launch.cop --workdir=/tmp/tgroup_cop_full --dim=128 --heads=8 \
    --ff=512 --layers=6 --starts=20 --batch_size=64 --learning_rate=1e-4 \
    --train_steps=100000 --collect_every=50 --num_test=1000 --num_val=64

KP joins with e.g. ``--tasks=TSP20,CVRP20,OP20,KP50`` (``--starts`` may not
exceed the smallest task's nodes).
"""
import dataclasses

from absl import flags

from launch import cli
from launch import common
from tgroup import pipeline
from tgroup.benchmarks.cop import benchmark
from tgroup.benchmarks.cop import instances
from tgroup.tasks import TaskSet

_TASKS = flags.DEFINE_list("tasks", list(instances.DEFAULT_TASKS),
                           "Problems and sizes, e.g. TSP20,CVRP50,OP20,KP50 (TSP, CVRP, OP, KP).")
_NUM_VAL = flags.DEFINE_integer("num_val", 16, "Fixed validation instances per task: the "
                                "lookahead score and the validation gaps.")
_NUM_TEST = flags.DEFINE_integer("num_test", 32, "Fixed test instances per task (the gaps).")
_INSTANCE_SEED = flags.DEFINE_integer("instance_seed", 0, "Seed of the validation and test "
                                      "instances (training instances follow --seed).")
_REFERENCE_SECONDS = flags.DEFINE_float(
    "reference_seconds_per_node", 0.01, "OR-Tools' time limit per reference instance, per node "
    "(0.2 s for 20 nodes, 0.5 s for 50; KP is solved exactly). Cached in WORKDIR.")
_WORKERS = flags.DEFINE_integer("reference_workers", None, "Processes solving references "
                                "(unset: the solver module's default).")
_DIM = flags.DEFINE_integer("dim", 64, "Embedding width of the encoder and decoders.")
_HEADS = flags.DEFINE_integer("heads", 4, "Attention heads.")
_FF = flags.DEFINE_integer("ff", 128, "Feed-forward width of each encoder layer.")
_LAYERS = flags.DEFINE_integer("layers", 2, "Encoder layers (shared by every task).")
_STARTS = flags.DEFINE_integer("starts", 8, "POMO starts per instance (at most the smallest "
                               "task's node count).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Instances per training batch.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 100, "Training steps of the collection run "
                                    "and of every group network.")
_COLLECT_EVERY_DEFAULT = 5  # a collected step costs about 25 training steps here
_NUM_GROUPS_DEFAULT = 3
for _module in common.flag_modules():
  flags.adopt_module_key_flags(_module)


def build() -> tuple[TaskSet, pipeline.PipelineConfig]:
  """The TaskSet and settings the flags describe, every flag checked."""
  common.seed()
  taskset = benchmark.cop(
      _TASKS.value, cache_dir=common.workdir(), num_val=_NUM_VAL.value,
      num_test=_NUM_TEST.value, instance_seed=_INSTANCE_SEED.value,
      reference_seconds_per_node=_REFERENCE_SECONDS.value, workers=_WORKERS.value, dim=_DIM.value,
      heads=_HEADS.value, ff=_FF.value, layers=_LAYERS.value, starts=_STARTS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      train_steps=_TRAIN_STEPS.value, quiet=common.quiet())
  config = common.pipeline_config(_NUM_GROUPS_DEFAULT, _TRAIN_STEPS.value)
  if not flags.FLAGS["collect_every"].present:
    config = dataclasses.replace(config, collect=dataclasses.replace(
        config.collect, collect_every=_COLLECT_EVERY_DEFAULT))
  if not flags.FLAGS["landscape_head_init"].present:
    # Each task has its own embedding and decoder, not heads stacked on a task axis.
    config = dataclasses.replace(config, landscape=dataclasses.replace(
        config.landscape, head_init="independent"))
  return taskset, config


main = common.main_of(build)

if __name__ == "__main__":
  cli.run(main)
