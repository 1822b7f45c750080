r"""Binary attributes of scikit-learn's digits: collect gains → group → train groups → compare.

Real data that ship inside scikit-learn (nothing is downloaded); the tasks, why
they were chosen and the measured transfer are in :mod:`tgroup.benchmarks.digits`.
The default runs on a CPU in well under a minute:

  python -m launch.digits --workdir=/tmp/tgroup_digits

It trains on 300 images with six attribute tasks (gt3, gt4, gt5, even, loop,
prime), 500 steps per network, and prints one row per method: its groups, total
test loss (cross-entropy summed over tasks), total test error and Δm against
STL. With seed 0:

  | method | groups | total test loss | total test error | Δm vs STL (%) |
  |---|---|---|---|---|
  | principled | {gt3,gt4,gt5} {even} {loop,prime} | 1.0168 | 0.3482 | -10.84 |
  | tag | {gt3,gt4,even,loop} {gt4,gt5} {loop,prime} | 1.0422 | 0.3760 | -20.22 |
  | stl | {gt3} {gt4} {gt5} {even} {loop} {prime} | 0.9854 | 0.3231 | +0.00 |
  | mtl_all | {gt3,gt4,gt5,even,loop,prime} | 1.0652 | 0.4011 | -25.95 |

Measured wall time on this project's 2-core CPU, shared with other jobs (load
average 3–7): 20–27 s with an empty compilation cache (``--compilation_cache=``),
12 s when JAX's persistent cache holds the programs.

The number of groups defaults to 3 (min(3, number of tasks) for other
--tasks): the size of the best partition the oracle measured, half the
single-task networks. Every method against the oracle, which trains all
2^6 − 1 = 63 subsets and gives each method its regret:

  python -m launch.digits --workdir=/tmp/tgroup_digits_all \
      --methods=principled,tag,cosine,first_order,hoa,landscape,random,oracle,stl,mtl_all

Measured: 32 s with an empty compilation cache, 12–25 s with it (seeds 0–4);
26–43 s with ``--eval_seeds=3``. Regrets over seeds are in
:mod:`tgroup.benchmarks.digits`. The oracle's cost doubles with every task
added by ``--tasks`` (2^m − 1 networks); larger ``--num_train``, ``--width`` and
``--depth`` settings: not measured.
"""
from absl import flags

from launch import cli
from launch import common
from tgroup import pipeline
from tgroup.benchmarks import digits
from tgroup.tasks import TaskSet

_TASKS = flags.DEFINE_list(
    "tasks", list(digits.DEFAULT_TASKS), "Comma list of digit attributes among "
    f"{', '.join(digits.ATTRIBUTES)} (gtK: digit > K; isK: digit == K; loop: 0,4,6,8,9; "
    "prime: 2,3,5,7; square: 0,1,4,9; straight: 1,4,7; symmetric: 0,1,8; mult3: 0,3,6,9).")
_NUM_TRAIN = flags.DEFINE_integer(
    "num_train", 300, "Training images (stratified over digits, at most 1,079); validation "
    "and test are fixed 20 % splits of the 1,797 images whatever its value.")
_WIDTH = flags.DEFINE_integer("width", 16, "Width of each hidden layer of the MLP trunk.")
_DEPTH = flags.DEFINE_integer("depth", 2, "Hidden layers of the MLP trunk.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 500, "Training steps (Adam, batch 128) of "
                                    "the collection run and of every group network.")
_NUM_GROUPS_DEFAULT = 3
for _module in common.flag_modules():
  flags.adopt_module_key_flags(_module)


def build() -> tuple[TaskSet, pipeline.PipelineConfig]:
  """The TaskSet and settings the flags describe, every flag checked."""
  common.seed()  # checked now, before the data are built
  tasks = digits.check_tasks(t.strip() for t in _TASKS.value)
  common.check_at_least_one(_TRAIN_STEPS, _WIDTH, _DEPTH)
  taskset = digits.digits(tasks, num_train=_NUM_TRAIN.value, width=_WIDTH.value,
                          depth=_DEPTH.value, train_steps=_TRAIN_STEPS.value)
  return taskset, common.pipeline_config(min(_NUM_GROUPS_DEFAULT, len(tasks)),
                                         _TRAIN_STEPS.value)


main = common.main_of(build)

if __name__ == "__main__":
  cli.run(main)
