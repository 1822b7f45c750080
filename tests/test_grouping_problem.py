"""The selection problem every entry point builds, and its answer in slots."""
import numpy as np

from tgroup.grouping import Constraints
from tgroup.grouping.budget import Budget
from tgroup.grouping.problem import SelectionProblem
from tgroup.grouping.select import Selection

nan = np.nan


def test_slots_of_a_cover_with_the_same_tasks_twice():
  # Candidates 0 and 2 both hold tasks {0, 1} (say a cheap and a dear network)
  # and each serves one of them; ties in the order keep the candidates' order.
  problem = SelectionProblem(
      sets=(frozenset({0, 1}), frozenset({2}), frozenset({0, 1})),
      scores=[[2.0, 0.0, nan], [nan, nan, 1.0], [0.0, 2.0, nan]],
      overlap=True, costs=[3.0, 0.5, 1.0], half_size=[False, True, False])
  found = problem.solve()
  assert found == Selection((0, 1, 2), {0: 0, 1: 2, 2: 1}, 5.0, "optimal")
  canonical = problem.chosen(found)
  assert canonical.candidates == (0, 2, 1)
  assert canonical.groups == ((0, 1), (0, 1), (2,))
  assert canonical.assignment == {0: 0, 1: 1, 2: 2}
  assert canonical.costs == (3.0, 1.0, 0.5)
  assert canonical.half_size == (False, False, True)
  by_cost = problem.chosen(found, by_cost=True)
  assert by_cost.candidates == (1, 2, 0)
  assert by_cost.assignment == {0: 2, 1: 1, 2: 0}
  assert by_cost.costs == (0.5, 1.0, 3.0)


def test_grouping_names_the_slots():
  problem = SelectionProblem(
      sets=(frozenset({2}), frozenset({0, 1})), scores=[[nan, nan, -1.0], [-1.0, -2.0, nan]],
      overlap=False, candidates="generated")
  found = problem.solve(time_limit_s=10)
  g = problem.grouping(["a", "b", "c"], found, "measured_loss", Constraints(), None,
                       objective=-found.objective)
  assert g.groups == (("a", "b"), ("c",)) and g.assignment == {"a": 0, "b": 0, "c": 1}
  # Generated candidates without a bound on the true optimum: CBC's proof covers only
  # them, so the grouping is not claimed optimal.
  assert (g.objective, g.status, g.candidates, g.overlap) == (4.0, "feasible", "generated",
                                                              False)
  assert g.bound is None and g.gap is None
  assert g.network_costs is None and g.half_size is None and g.budget is None
  priced = SelectionProblem(problem.sets, problem.scores, False, costs=[2.0, 1.5])
  budget = Budget(cost=lambda group, half: 0.0, cost_model="toy")
  g = priced.grouping("abc", priced.solve(), "x", Constraints(), budget)
  assert g.network_costs == (1.5, 2.0) and g.half_size == (False, False)
  assert g.total_cost == 3.5 and g.budget["cost_model"] == "toy"


def test_costs_bind_only_with_a_budget_or_a_cap():
  problem = SelectionProblem(
      sets=(frozenset({0}), frozenset({1}), frozenset({0, 1})),
      scores=[[1.0, nan], [nan, 1.0], [1.5, 1.5]], overlap=False,
      costs=[1.0, 1.0, 3.0], half_size=[True, False, False])
  assert problem.solve().chosen == (2,)
  assert problem.solve(minimise_cost=True).chosen == (0, 1)
  within = SelectionProblem(problem.sets, problem.scores, False, costs=problem.costs,
                            budget=2.5)
  assert within.solve().chosen == (0, 1)
  capped = problem.capped(2.0)
  assert capped.sets == problem.sets[:2] and capped.half_size.tolist() == [True, False]
  assert capped.costs.tolist() == [1.0, 1.0] and capped.scores.shape == (2, 2)
  assert capped.solve().chosen == (0, 1)
  assert problem.capped(None) is problem
  assert problem.capped(0.5).solve() is None  # nothing left to choose


def test_priced_asks_each_network_its_cost_and_applies_the_limits():
  asked = []

  def cost(group, half):
    asked.append((group, half))
    return 0.5 if half else float(len(group))

  problem = SelectionProblem(
      sets=(frozenset({1, 0}), frozenset({0}), frozenset({0})),
      scores=[[1.0, 1.0], [1.0, nan], [1.0, nan]], overlap=True,
      half_size=[False, False, True])
  priced = problem.priced(Budget(cost=cost, total=2.0, max_network_cost=1.5))
  assert asked == [((0, 1), False), ((0,), False), ((0,), True)]
  assert priced.sets == (frozenset({0}), frozenset({0}))
  assert priced.costs.tolist() == [1.0, 0.5] and priced.half_size.tolist() == [False, True]
  assert priced.budget == 2.0
  assert problem.priced(None) is problem
