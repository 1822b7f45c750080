r"""Standley's network selection on a table of trained networks' losses, no JAX.

Reads one of Standley et al.'s released tables (tab-separated; row 1: half-size
single-task networks costing 0.5, every later row: a full-size network costing
1), chooses networks within --budget so that every task is served, minimising
the sum over tasks of each task's lowest loss among the chosen networks, and
prints them; --test_table scores the choice on held-out losses of the same
networks, each task staying on the network chosen for it on --table.

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
"""
from __future__ import annotations

import math

from absl import flags

from launch import cli
from tgroup.errors import UserError
from tgroup.grouping.network_selection import APPROXIMATIONS, select_networks
from tgroup.grouping.network_table import read_table

_TABLE = flags.DEFINE_string(
    "table", None, "The loss table to select on (e.g. validation losses), in Standley's "
    "format: tab-separated, no header, one column per task; row 1 the half-size "
    "single-task networks (cost 0.5), each later row a full-size network (cost 1). "
    "Required.")
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


def main(argv):
  del argv
  if not _TABLE.value:
    raise UserError("--table is required: the loss table to select on")
  if _BUDGET.value is None:
    raise UserError("--budget is required: the most the chosen networks may cost")
  if not 0 < _BUDGET.value < math.inf:  # a NaN fails this too
    raise UserError(f"--budget must be > 0 and finite, got {_BUDGET.value:g}")
  if _TIME_LIMIT_S.value is not None and not _TIME_LIMIT_S.value > 0:
    raise UserError(f"--time_limit_s must be > 0, got {_TIME_LIMIT_S.value:g}")
  table = read_table(_TABLE.value)
  test_table = read_table(_TEST_TABLE.value) if _TEST_TABLE.value else None
  result = select_networks(table, _BUDGET.value, _APPROXIMATION.value, test_table,
                           time_limit_s=_TIME_LIMIT_S.value)
  cli.emit(result, _summary(result), _OUTPUT.value)


if __name__ == "__main__":
  cli.run(main)
