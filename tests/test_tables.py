"""Standley's network selection on his released Taskonomy tables, against brute force.

The fixtures in tests/data/taskonomy_network_tables are Standley et al.'s (ICML
2020) per-task losses of a network for every subset of 5 tasks (see the README
there). The oracle (brute_force_grouping.network_choices) knows nothing of the
MIP: an optimal choice is fixed by which network serves each task, so it
enumerates every per-task choice (17^5 for these tables) and prices the
distinct networks used.
"""
import functools
import math
from pathlib import Path

import numpy as np
import pytest

import brute_force_grouping as bf
from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.network_selection import (APPROXIMATIONS, cheapest_cost, hoa_table,
                                                 select_networks)
from tgroup.grouping.network_table import NetworkTable, parse_table, read_table

DATA = Path(__file__).parent / "data" / "taskonomy_network_tables"
FILES = sorted(p.name for p in DATA.glob("*.tsv"))
BUDGETS = [1 + 0.5 * k for k in range(9)]
# The one release lacking a pair network (tasks 1 and 2), so no HOA.
NO_HOA = "results_alt_20.tsv"
# Three tasks: half-size singles, the pairs {0, 1}, {1, 2}, {0, 2}, then all three.
HAND = "0.5\t0.5\t0.5\n0.3\t0.35\t\n\t0.45\t0.4\n0.45\t\t0.5\n0.4\t0.4\t0.6\n"


def test_all_releases_are_here():
  assert len(FILES) == 13 and "results.tsv" in FILES and "results_test.tsv" in FILES


def test_brute_force_on_a_hand_made_table():
  table = parse_table(HAND)
  total, cost = bf.network_choices(table.losses, table.costs)
  assert len(total) == 4 ** 3  # each task: its half-size net, two pairs, the triple
  # 1.5 buys {0, 1} (0.3 + 0.35) plus task 2's half-size net (0.5).
  assert total[cost <= 1.5].min() == pytest.approx(1.15)
  assert total[cost <= 1.0].min() == pytest.approx(1.4)
  assert cost.min() == 1.0


@functools.lru_cache(maxsize=None)
def oracle(name: str, approximation: str):
  """For every budget, the lowest summed loss on the table selected on (inf: none)."""
  table = read_table(str(DATA / name))
  selecting = hoa_table(table) if approximation == "hoa" else table
  total, cost = bf.network_choices(selecting.losses, selecting.costs)
  best = {b: float(total[cost <= b + 1e-9].min()) if (cost <= b + 1e-9).any() else math.inf
          for b in BUDGETS}
  return table, best, float(cost.min())


def network_index(table, network) -> int:
  """The row of a chosen network, found by its tasks and cost (unique in these tables)."""
  found = [n for n, tasks in enumerate(table.networks)
           if tasks == frozenset(network["tasks"]) and table.costs[n] == network["cost"]]
  assert len(found) == 1, network
  return found[0]


@pytest.mark.parametrize("approximation", APPROXIMATIONS)
@pytest.mark.parametrize("name", FILES)
def test_selection_matches_brute_force(name, approximation):
  if approximation == "hoa" and name == NO_HOA:
    with pytest.raises(UserError, match=r"pair network of tasks \{1, 2\}"):
      select_networks(read_table(str(DATA / name)), 5, "hoa")
    return
  table, best, _ = oracle(name, approximation)
  for budget in BUDGETS:
    result = select_networks(table, budget, approximation)
    assert result["status"] == "optimal"
    assert result["predicted_total_loss"] == pytest.approx(best[budget], abs=1e-9), budget
    chosen = [network_index(table, n) for n in result["networks"]]
    assert len(set(chosen)) == len(chosen)
    assert math.fsum(table.costs[chosen]) <= budget + 1e-9
    # Re-scored on the real losses, whichever table was selected on.
    real = sum(min(table.losses[n, t] for n in chosen if t in table.networks[n])
               for t in range(table.num_tasks))
    assert result["total_loss"] == pytest.approx(real, abs=1e-12)
    for t, i in enumerate(result["assignment"]):
      assert t in result["networks"][i]["tasks"]
    if approximation == "none":
      assert result["total_loss"] == pytest.approx(result["predicted_total_loss"], abs=1e-12)


def test_hoa_names_the_missing_pair():
  table = read_table(str(DATA / NO_HOA))
  with pytest.raises(UserError, match=r"results_alt_20.tsv.*\{0, 1, 2\}.*tasks \{1, 2\}"):
    hoa_table(table)
  with pytest.raises(UserError, match=r"tasks \{1, 2\}"):
    select_networks(table, 3, "hoa")


@pytest.mark.parametrize("name", FILES)
def test_cheapest_cost_matches_brute_force(name):
  table, _, cheapest = oracle(name, "none")
  assert cheapest_cost(table) == cheapest == 1.0
  with pytest.raises(InfeasibleError, match=r"budget 0\.4 .*cost 1$"):
    select_networks(table, 0.4)


def test_infeasible_budget_without_the_all_task_network(tmp_path):
  lines = (DATA / "results.tsv").read_text().splitlines()
  assert all(lines[-1].split("\t"))
  path = tmp_path / "no_all_task.tsv"
  path.write_text("\n".join(lines[:-1]) + "\n")
  table = read_table(str(path))
  total, cost = bf.network_choices(table.losses, table.costs)
  assert cheapest_cost(table) == cost.min() == 1.5
  with pytest.raises(InfeasibleError, match=r"no_all_task.tsv: budget 1 .*cost 1\.5"):
    select_networks(table, 1.0)
  result = select_networks(table, 1.5)
  assert result["total_loss"] == pytest.approx(total[cost <= 1.5].min(), abs=1e-9)


def test_test_total_loss_keeps_the_selection_assignment():
  # On validation, task 0 is best on its own full-size network, task 1 on the
  # pair; on test the pair is better for task 0 too, but the choice stands.
  val = parse_table("0.9\t0.9\n0.40\t0.30\n0.35\t\n", "val.tsv")
  test = parse_table("0.9\t0.9\n0.20\t0.30\n0.50\t\n", "test.tsv")
  result = select_networks(val, 2, test_table=test)
  assert result["networks"] == [{"tasks": [0], "cost": 1.0}, {"tasks": [0, 1], "cost": 1.0}]
  assert result["assignment"] == [0, 1]
  assert result["total_loss"] == pytest.approx(0.65)
  assert result["test_total_loss"] == pytest.approx(0.80)  # not the test-best 0.50
  assert result["table"] == "val.tsv" and result["test_table"] == "test.tsv"


def test_results_tsv_against_results_test_tsv():
  val = read_table(str(DATA / "results.tsv"))
  test = read_table(str(DATA / "results_test.tsv"))
  result = select_networks(val, 2.5, test_table=test)
  assert [n["tasks"] for n in result["networks"]] == [[2], [0, 1, 2], [2, 3, 4]]
  assert result["total_loss"] == pytest.approx(0.45076, abs=1e-9)
  assert result["test_total_loss"] == pytest.approx(0.44612, abs=1e-9)
  assert set(result) >= {"budget", "networks", "total_loss", "test_total_loss",
                         "approximation", "predicted_total_loss", "assignment", "status"}


def test_test_table_must_match():
  val = parse_table("0.9\t0.9\n0.4\t0.3\n", "val.tsv")
  for text, problem in [("0.9\t0.9\t0.9\n", "3 tasks"), ("0.9\t0.9\n", "2 networks"),
                        ("0.9\t0.9\n0.4\t\n", r"network 2 serves tasks \{0\}")]:
    with pytest.raises(UserError, match=f"test.tsv does not match val.tsv: {problem}"):
      select_networks(val, 2, test_table=parse_table(text, "test.tsv"))


def test_hoa_on_a_hand_made_table():
  table = parse_table(HAND, "hand.tsv")
  hoa = hoa_table(table)
  # Task 0 in {0, 1, 2}: mean of its losses on {0, 1} and {0, 2}; likewise 1 and 2.
  assert hoa.losses[-1].tolist() == pytest.approx([(0.3 + 0.45) / 2, (0.35 + 0.45) / 2,
                                                   (0.4 + 0.5) / 2])
  np.testing.assert_array_equal(hoa.losses[:-1], table.losses[:-1])
  assert hoa.networks == table.networks
  np.testing.assert_array_equal(hoa.costs, table.costs)
  result = select_networks(table, 1, "hoa")
  assert result["predicted_total_loss"] == pytest.approx(1.225)
  assert result["total_loss"] == pytest.approx(1.4)


def test_hoa_refuses_a_missing_or_doubled_pair():
  missing = HAND.replace("\t0.45\t0.4\n", "")
  with pytest.raises(UserError, match=r"\{0, 1, 2\} needs the pair network of tasks "
                     r"\{1, 2\}, which the table lacks"):
    hoa_table(parse_table(missing, "m.tsv"))
  doubled = HAND + "0.31\t0.36\t\n"
  with pytest.raises(UserError, match=r"tasks \{0, 1\}, which the table holds 2 times"):
    hoa_table(parse_table(doubled, "d.tsv"))


@pytest.mark.parametrize("budget", [0, -1, math.nan, math.inf, True, "2", None])
def test_bad_budget(budget):
  with pytest.raises(UserError, match="budget must be a positive number"):
    select_networks(parse_table(HAND), budget)


def test_bad_approximation():
  with pytest.raises(UserError, match="approximation must be one of none, hoa"):
    select_networks(parse_table(HAND), 2, "HOA")


@pytest.mark.parametrize("text, line, message", [
    ("1\t2\n1\t2\t3\n", 2, "3 tab-separated columns, expected 2"),
    ("1\t2\n0.1\t0.2\n1\n", 3, "1 tab-separated columns, expected 2"),
    ("1\t2\n1\tabc\n", 2, "column 2 (task 1): 'abc' is not a number"),
    ("1\t2\n1_0\t\n", 2, "column 1 (task 0): '1_0' is not a number"),
    ("1\t2\n0.3\t0.4\n-0.5\t\n", 3, "column 1 (task 0): loss '-0.5' is negative"),
    ("1\tnan\n", 1, "column 2 (task 1): loss 'nan' is not finite"),
    ("1\t2\n\tinf\n", 2, "column 2 (task 1): loss 'inf' is not finite"),
    ("1\t\n0.1\t0.2\n", 1, "column 2 (task 1) is empty"),
    ("\n1\t2\n", 1, "row 1 is blank"),
    ("1\t2\n\t\n0.1\t0.2\n", 2, "row has no values"),
    ("1\t2\n\n0.1\t0.2\n", 2, "row has no values"),
])
def test_read_table_errors(tmp_path, text, line, message):
  path = tmp_path / "bad.tsv"
  path.write_text(text)
  with pytest.raises(UserError) as e:
    read_table(str(path))
  assert str(e.value).startswith(f"{path}:{line}: {message}")
  assert "\n" not in str(e.value)


def test_read_table_file_errors(tmp_path):
  missing = tmp_path / "missing.tsv"
  with pytest.raises(UserError, match=f"^{missing}: no such file$"):
    read_table(str(missing))
  with pytest.raises(UserError, match=f"^{tmp_path}: cannot read"):
    read_table(str(tmp_path))
  empty = tmp_path / "empty.tsv"
  empty.write_text("\n\n")
  with pytest.raises(UserError, match=f"^{empty}: empty"):
    read_table(str(empty))
  binary = tmp_path / "binary.tsv"
  binary.write_bytes(b"1\t2\n\xff\t1\n")
  with pytest.raises(UserError, match=f"^{binary}:2: not UTF-8 text$"):
    read_table(str(binary))


@pytest.mark.parametrize("text", [
    "0.5\t0.6\n0.3\t0.7",             # no final newline
    "0.5\t0.6\n0.3\t0.7\n\n \n\t\n",  # blank lines after the last row
    "0.5\t0.6\r\n0.3\t0.7\r\n",       # Windows line ends
    " 0.5\t0.6 \n0.3\t 7e-1\n",       # spaces around numbers, exponents
])
def test_read_table_accepts(tmp_path, text):
  path = tmp_path / "ok.tsv"
  path.write_bytes(text.encode())
  table = read_table(str(path))
  assert table.networks == (frozenset({0}), frozenset({1}), frozenset({0, 1}))
  assert table.costs.tolist() == [0.5, 0.5, 1.0]
  np.testing.assert_allclose(table.losses, [[0.5, np.nan], [np.nan, 0.6], [0.3, 0.7]])
  assert table.source == str(path)


@pytest.mark.parametrize("m", [1, 3, 7])
def test_any_number_of_columns(m):
  text = "\t".join(["0.5"] * m) + "\n" + "\t".join(["0.4"] * m) + "\n"
  table = parse_table(text)
  assert table.num_tasks == m and len(table.networks) == m + 1
  result = select_networks(table, 1)
  assert result["networks"] == [{"tasks": list(range(m)), "cost": 1.0}]
  assert result["total_loss"] == pytest.approx(0.4 * m)


def test_released_layout():
  table = read_table(str(DATA / "results.tsv"))
  assert table.num_tasks == 5 and len(table.networks) == 36
  assert table.networks[:5] == tuple(frozenset({k}) for k in range(5))
  assert set(table.networks[5:]) == {frozenset(s) for s in _subsets(5)}
  assert table.costs.tolist() == [0.5] * 5 + [1.0] * 31
  assert not table.losses.flags.writeable


def _subsets(m):
  return [[t for t in range(m) if mask >> t & 1] for mask in range(1, 2 ** m)]


def test_network_table_validates():
  with pytest.raises(UserError, match="network 0 omits task 1 but its loss there is 0.5"):
    NetworkTable((frozenset({0}),), np.array([1.0]), np.array([[0.5, 0.5]]), 2)
  with pytest.raises(UserError, match=r"network 0 must serve a non-empty set of task "
                     r"indices in \[0, 1\)"):
    NetworkTable((frozenset({1}),), np.array([1.0]), np.array([[0.5]]), 1)
  with pytest.raises(UserError, match="costs must be 1 finite numbers"):
    NetworkTable((frozenset({0}),), np.array([-1.0]), np.array([[0.5]]), 1)
  unserved = NetworkTable((frozenset({0}),), np.array([1.0]),
                                 np.array([[0.5, np.nan]]), 2, "u.tsv")
  assert cheapest_cost(unserved) == math.inf
  with pytest.raises(InfeasibleError, match="u.tsv: no network serves task 1"):
    select_networks(unserved, 5)
