r"""Planted task clusters: collect gains → group → train groups → compare.

Runs on a CPU in a few minutes with the defaults:

  python -m launch.synthetic --workdir=/tmp/tgroup_synthetic

and prints a table where the principled grouping should equal the planted
clusters (``ground_truth_groups`` in report.json) with a total test loss below
both STL and MTL-all. The number of groups defaults to --num_clusters (one
network per family: the budget a user would set); --num_groups=0 lets the MIP
choose (the default marginal form allows it; --principled_form=self_pair does not).
"""
import math

from absl import flags

from launch import cli
from launch import common
from tgroup import pipeline
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.tasks import TaskSet

_NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", 3, "Planted clusters.")
_TASKS_PER_CLUSTER = flags.DEFINE_integer("tasks_per_cluster", 3, "Tasks per cluster.")
_RHO = flags.DEFINE_float("rho", 0.5, "Readout diversity within a cluster (difficulty: 0.5 "
                          "easy, 1.0-1.5 hard).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 2000, "Training steps of the collection run "
                                    "and of every group network.")
for _module in common.flag_modules():
  flags.adopt_module_key_flags(_module)


def build() -> tuple[TaskSet, pipeline.PipelineConfig]:
  """The TaskSet and settings the flags describe, every flag checked."""
  common.seed()  # checked now, before the data are built
  common.check_at_least_one(_NUM_CLUSTERS, _TASKS_PER_CLUSTER, _TRAIN_STEPS)
  if not 0 <= _RHO.value < math.inf:  # a NaN fails this too
    raise UserError(f"--rho must be a finite number >= 0, got {_RHO.value}")
  taskset = synthetic.synthetic(_NUM_CLUSTERS.value, _TASKS_PER_CLUSTER.value, rho=_RHO.value,
                                seed=common.seed(), train_steps=_TRAIN_STEPS.value)
  return taskset, common.pipeline_config(_NUM_CLUSTERS.value, _TRAIN_STEPS.value)


main = common.main_of(build)

if __name__ == "__main__":
  cli.run(main)
