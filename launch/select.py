r"""Selection among trained networks from a table of their measured results, no JAX.

Two modes: --table (Standley's network tables) or --combinations with --scores (a
combination table); exactly one of --table and --combinations is given.

Standley's tables (--table). Reads one of Standley et al.'s released tables
(tab-separated; row 1: half-size single-task networks costing 0.5, every later
row: a full-size network costing 1), chooses networks within --budget so that
every task is served, minimising the sum over tasks of each task's lowest loss
among the chosen networks, and prints them; --test_table scores the choice on
held-out losses of the same networks, each task staying on the network chosen
for it on --table.

  python -m launch.select --table=tests/data/taskonomy_network_tables/results.tsv \
      --test_table=tests/data/taskonomy_network_tables/results_test.tsv --budget=2.5

prints

  tests/data/taskonomy_network_tables/results.tsv, budget 2.5, approximation none: optimal
    cost  tasks         serves
     0.5  {2}           2
     1.0  {0, 1, 2}     0, 1
     1.0  {2, 3, 4}     3, 4
  total loss 0.45076 (selected on 0.45076), test total loss 0.44612

--approximation=hoa selects on Standley's higher-order approximation (each
network of 3+ tasks predicted from the pair networks); the total loss is then
re-scored on the real losses of --table. --output writes the result as JSON
(atomically). With --quiet and no --output, that JSON is printed instead of
the table, for scripts.

Combination tables (--combinations). Reads a combination table in two whitespace-separated files
with one row per trained group, in the same order: --combinations holds each
group's 0/1 membership mask over the m tasks, --scores each member task's score
on that group's network (0 for non-members). --score_kind=gain: higher is better,
relative to training the task alone, so a singleton's gain is 0 and singleton
rows the table lacks are implied (gain 0); --score_kind=loss: lower is better,
and only the singleton rows present exist. It chooses a partition of the tasks
among the rows (each task in exactly one chosen row), or with --overlap a cover
(each task served by its best chosen row), with exactly --num_groups or at most
--max_groups rows, optimising the summed score of each task on the row serving
it; --test_scores scores the choice on held-out scores of the same rows.

  python -m launch.select --combinations=tests/data/combination_tables/combinations.txt \
      --scores=tests/data/combination_tables/gains.txt --score_kind=gain \
      --test_scores=tests/data/combination_tables/gains_test.txt --overlap

prints

  tests/data/combination_tables/combinations.txt, gain, cover into any number of rows: optimal
     row  tasks         serves       gain
       4  {0, 1}        0         0.07100
      11  {0, 1, 3}     1         0.04800
       9  {2, 3}        2, 3      0.11200
  total gain 0.23100, test total gain 0.23700

(row r is line r + 1 of both files; "-" marks an implied singleton).
"""
from __future__ import annotations

import math

from absl import flags

from launch import cli
from tgroup.errors import UserError
from tgroup.grouping.combination_table import SCORE_KINDS
from tgroup.grouping.combination_table import read_combination_table
from tgroup.grouping.combination_table import read_test_scores
from tgroup.grouping.combination_table import select_combinations
from tgroup.grouping.network_selection import APPROXIMATIONS, select_networks
from tgroup.grouping.network_table import read_table

_TABLE = flags.DEFINE_string(
    "table", None, "The loss table to select on (e.g. validation losses), in Standley's "
    "format: tab-separated, no header, one column per task; row 1 the half-size "
    "single-task networks (cost 0.5), each later row a full-size network (cost 1). "
    "Required unless --combinations is given.")
_TEST_TABLE = flags.DEFINE_string(
    "test_table", None, "The same networks' losses on held-out data (same rows, same "
    "empty cells); the choice is scored on it. Optional.")
_BUDGET = flags.DEFINE_float(
    "budget", None, "The most the chosen networks may cost together (> 0): a half-size "
    "network costs 0.5, a full-size one 1. Required.")
_APPROXIMATION = flags.DEFINE_enum(
    "approximation", "none", list(APPROXIMATIONS),
    "none: select on the table's losses; hoa: on Standley's higher-order approximation "
    "(a network of 3+ tasks predicted from the pair networks; needs every pair).")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Write the selection here as JSON (atomically); unset: only print.")
_COMBINATIONS = flags.DEFINE_string(
    "combinations", None, "A combination table's groups instead of --table: one row per "
    "trained group, its 0/1 membership mask over the tasks, whitespace-separated. Needs "
    "--scores and --score_kind.")
_SCORES = flags.DEFINE_string(
    "scores", None, "With --combinations: row for row, each member task's score on that "
    "group's network, 0 for non-members (whitespace-separated). Selected on.")
_TEST_SCORES = flags.DEFINE_string(
    "test_scores", None, "With --combinations: the same rows' held-out scores (same shape); "
    "the choice is scored on it. Optional.")
_SCORE_KIND = flags.DEFINE_enum(
    "score_kind", None, list(SCORE_KINDS),
    "With --combinations, what the scores are: gain (higher is better, relative to training "
    "the task alone: a singleton's gain is 0, and singleton rows the table lacks are implied "
    "with gain 0) or loss (lower is better; only the singleton rows present exist).")
_NUM_GROUPS = flags.DEFINE_integer(
    "num_groups", None, "With --combinations: choose exactly this many rows; unset or 0: any "
    "number.")
_MAX_GROUPS = flags.DEFINE_integer(
    "max_groups", None, "With --combinations: choose at most this many rows.")
_OVERLAP = flags.DEFINE_bool(
    "overlap", False, "With --combinations: a cover (each task served by its best chosen "
    "row) instead of a partition (each task in exactly one chosen row).")
_TIME_LIMIT_S = flags.DEFINE_float(
    "time_limit_s", None, "CBC's time limit in seconds; the status says whether the "
    "choice was proven optimal. Unset: no limit.")
flags.adopt_module_key_flags(cli)


def _summary(result: dict) -> str:
  """The chosen networks, which tasks each serves, and the totals."""
  serves = [[t for t, i in enumerate(result["assignment"]) if i == n]
            for n in range(len(result["networks"]))]
  lines = [f"{result['table']}, budget {result['budget']:g}, approximation "
           f"{result['approximation']}: {result['status']}",
           f"  {'cost':>4}  {'tasks':<12}  serves"]
  for network, served in zip(result["networks"], serves):
    tasks = "{" + ", ".join(map(str, network["tasks"])) + "}"
    lines.append(f"  {network['cost']:4.1f}  {tasks:<12}  {', '.join(map(str, served))}")
  total = (f"total loss {result['total_loss']:.5f} (selected on "
           f"{result['predicted_total_loss']:.5f})")
  if result["test_total_loss"] is not None:
    total += f", test total loss {result['test_total_loss']:.5f}"
  return "\n".join(lines + [total])


_TABLE_FLAGS = ("table", "test_table", "budget", "approximation")
_COMBINATION_FLAGS = ("combinations", "scores", "test_scores", "score_kind", "num_groups",
                      "max_groups", "overlap")


def _given(names) -> list[str]:
  return [name for name in names if flags.FLAGS[name].present]


def _combination_summary(result: dict) -> str:
  """The chosen rows, which tasks each serves, and the totals."""
  kind = result["score_kind"]
  if result["num_groups"] is not None:
    count = f"exactly {result['num_groups']}"
  elif result["max_groups"] is not None:
    count = f"at most {result['max_groups']}"
  else:
    count = "any number of"
  lines = [f"{result['combinations']}, {kind}, {'cover' if result['overlap'] else 'partition'}"
           f" into {count} rows: {result['status']}",
           f"  {'row':>4}  {'tasks':<12}  {'serves':<7}  {kind:>8}"]
  for group in result["groups"]:
    tasks = "{" + ", ".join(map(str, group["tasks"])) + "}"
    row = "-" if group["row"] is None else str(group["row"])
    served = ", ".join(map(str, group["serves"]))
    lines.append(f"  {row:>4}  {tasks:<12}  {served:<7}  {group['total']:8.5f}")
  total = f"total {kind} {result['total']:.5f}"
  if result["test_total"] is not None:
    total += f", test total {kind} {result['test_total']:.5f}"
  return "\n".join(lines + [total])


def _select_combinations() -> None:
  if not _COMBINATIONS.value:
    given = [name for name in _given(_COMBINATION_FLAGS) if name != "combinations"]
    what = f"--{given[0]} needs --combinations" if given else "--combinations is empty"
    raise UserError(f"{what}: the file of 0/1 group masks to select among")
  if not _SCORES.value:
    raise UserError("--scores is required with --combinations: each row's member scores")
  if _SCORE_KIND.value is None:
    raise UserError("--score_kind is required with --combinations: gain (higher is better) "
                    "or loss (lower is better)")
  num_groups = _NUM_GROUPS.value
  if num_groups is not None and num_groups < 0:
    raise UserError(f"--num_groups must be >= 0 (0: any number), got {num_groups}")
  if _MAX_GROUPS.value is not None and _MAX_GROUPS.value < 1:
    raise UserError(f"--max_groups must be >= 1, got {_MAX_GROUPS.value}")
  if num_groups and _MAX_GROUPS.value is not None and num_groups > _MAX_GROUPS.value:
    raise UserError(f"--num_groups={num_groups} exceeds --max_groups={_MAX_GROUPS.value}")
  table = read_combination_table(_COMBINATIONS.value, _SCORES.value, _SCORE_KIND.value)
  test_scores = read_test_scores(_TEST_SCORES.value, table) if _TEST_SCORES.value else None
  result = select_combinations(table, num_groups or None, _MAX_GROUPS.value, _OVERLAP.value,
                               test_scores, _TIME_LIMIT_S.value, _TEST_SCORES.value)
  cli.emit(result, _combination_summary(result), _OUTPUT.value)


def main(argv):
  del argv
  if _TIME_LIMIT_S.value is not None and not _TIME_LIMIT_S.value > 0:
    raise UserError(f"--time_limit_s must be > 0, got {_TIME_LIMIT_S.value:g}")
  if _TABLE.value and _COMBINATIONS.value:
    raise UserError("--table and --combinations are two modes (Standley's tables, a "
                    "combination table); give one")
  table_flags, combination_flags = _given(_TABLE_FLAGS), _given(_COMBINATION_FLAGS)
  if table_flags and combination_flags:
    if _COMBINATIONS.value:
      stray, owner, mode = table_flags[0], "--table (Standley's tables)", "--combinations"
    else:
      stray, owner, mode = combination_flags[0], "--combinations", "--table"
    raise UserError(f"--{stray} belongs to {owner}, not to {mode}; give one mode's flags")
  if combination_flags:
    _select_combinations()
    return
  if not _TABLE.value:
    raise UserError("--table is required: the loss table to select on (or --combinations "
                    "with --scores and --score_kind: a combination table)")
  if _BUDGET.value is None:
    raise UserError("--budget is required: the most the chosen networks may cost")
  if not 0 < _BUDGET.value < math.inf:  # a NaN fails this too
    raise UserError(f"--budget must be > 0 and finite, got {_BUDGET.value:g}")
  table = read_table(_TABLE.value)
  test_table = read_table(_TEST_TABLE.value) if _TEST_TABLE.value else None
  result = select_networks(table, _BUDGET.value, _APPROXIMATION.value, test_table,
                           time_limit_s=_TIME_LIMIT_S.value)
  cli.emit(result, _summary(result), _OUTPUT.value)


if __name__ == "__main__":
  cli.run(main)
