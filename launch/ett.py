r"""ETT forecasting, one task per channel: collect gains → group → train groups → compare.

The data, split, model and the generated stand-in are described in
:mod:`tgroup.benchmarks.ett`. Without ``--data`` the run writes an ETT-like
15-minute CSV (20 months, 57,600 rows, seeded by --seed) to
WORKDIR/ett_generated_m.csv and reads it back through the same loader as a
real file:

  python -m launch.ett --workdir=/tmp/tgroup_ett

It forecasts 24 rows from 96 for the seven channels (HUFL, HULL, MUFL, MULL,
LUFL, LULL, OT), trains every network for 1000 Adam steps on every 8th training
window, and prints one row per method: its groups, total test loss (MSE summed
over channels, scaled units) and Δm against STL (from the per-channel test MAE,
which report.json holds). With seed 0 (2026-12-06):

  | method | groups | total test loss | Δm vs STL (%) |
  |---|---|---|---|
  | principled | {HUFL,MUFL,LUFL} {HULL,MULL,LULL} {OT} | 0.8292 | +2.63 |
  | tag | {HUFL,MUFL,LUFL} {HULL,MULL} {HULL,MULL,LULL,OT} | 0.8513 | +0.69 |
  | stl | {HUFL} {HULL} {MUFL} {MULL} {LUFL} {LULL} {OT} | 0.8905 | +0.00 |
  | mtl_all | {HUFL,HULL,MUFL,MULL,LUFL,LULL,OT} | 0.8242 | +1.10 |

On the generated data the principled grouping is the three families the
generator plants (useful loads, useless loads, oil temperature). Measured wall
time on this project's 2-core CPU, shared with other jobs (load average about
4): 121 s on a first run (no earlier run had compiled its programs), 72 s of
it gain collection (1000 steps; principled takes 28 lookaheads a step).

A real file (ETTm1.csv/ETTm2.csv, or ETTh1.csv/ETTh2.csv with --variant=h):

  python -m launch.ett --workdir=/tmp/tgroup_ett1 --data=/path/to/ETTm1.csv

A file that cannot be read (a missing column, a cell that is not a number, too
few rows for the 12/4/4-month split) stops the run with one line naming the
file, line and column, and exit status 2.
"""
import os

from absl import flags

from launch import cli
from launch import common
from tgroup import pipeline
from tgroup.benchmarks import ett
from tgroup.tasks import TaskSet

_DATA = flags.DEFINE_string(
    "data", None, "An ETT CSV (columns date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT), e.g. ETTm1.csv. "
    "Unset: an ETT-like file is generated into WORKDIR (seeded by --seed) and read back.")
_VARIANT = flags.DEFINE_enum("variant", "m", ["m", "h"], "m: 15-minute rows (ETTm1/ETTm2); "
                             "h: hourly rows (ETTh1/ETTh2). Sets the 12/4/4-month split borders.")
_INPUT_LEN = flags.DEFINE_integer("input_len", 96, "History rows each forecast reads.")
_PRED_LEN = flags.DEFINE_integer("pred_len", 24, "Rows forecast per channel.")
_WINDOW_STRIDE = flags.DEFINE_integer(
    "window_stride", None, "Take every k-th training window (validation and test take all). "
    "Unset: two hours of rows (8 for --variant=m, 2 for h), about 4,300 training windows.")
_WIDTH = flags.DEFINE_integer("width", 128, "Width of the trunk's shared ReLU layer.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 1000, "Training steps (Adam, batch 128) of "
                                    "the collection run and of every group network.")
_NUM_GROUPS_DEFAULT = 3
for _module in common.flag_modules():
  flags.adopt_module_key_flags(_module)


def data_path() -> str:
  """``--data``, or the generated file in the workdir (written now, deterministic)."""
  if _DATA.value:
    return _DATA.value
  path = os.path.join(common.workdir(), f"ett_generated_{_VARIANT.value}.csv")
  return ett.generate_csv(path, _VARIANT.value, seed=common.seed())


def build() -> tuple[TaskSet, pipeline.PipelineConfig]:
  """The TaskSet and settings the flags describe, every flag checked."""
  common.seed()  # checked now, before the data are built
  common.check_at_least_one(_INPUT_LEN, _PRED_LEN, _WIDTH, _TRAIN_STEPS)
  if _WINDOW_STRIDE.value is None:
    stride = ett.default_stride(_VARIANT.value)  # resolved here: unset and explicit agree
  else:
    common.check_at_least_one(_WINDOW_STRIDE)
    stride = _WINDOW_STRIDE.value
  taskset = ett.ett(data_path(), variant=_VARIANT.value, input_len=_INPUT_LEN.value,
                    pred_len=_PRED_LEN.value, window_stride=stride, width=_WIDTH.value,
                    train_steps=_TRAIN_STEPS.value)
  return taskset, common.pipeline_config(_NUM_GROUPS_DEFAULT, _TRAIN_STEPS.value)


main = common.main_of(build)

if __name__ == "__main__":
  cli.run(main)
