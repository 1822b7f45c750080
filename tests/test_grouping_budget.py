"""Budgeted grouping equals brute force: total budgets, per-network caps, half-size networks,
for partitions and covers."""
import itertools
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import brute_force_grouping as bf
from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping import Constraints, Grouping, solve_grouping
from tgroup.grouping.budget import Budget

NAMES = tuple("abcde")
SETTINGS = dict(deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow])


def cost_table(rng, m):
  """A cost per (group, half) drawn at random: a base per network plus per-task costs."""
  base, per_task = rng.uniform(1, 3), rng.uniform(0.2, 2, m)
  half = rng.uniform(0.3, 0.7)
  return lambda g, h: round((base + per_task[list(g)].sum()) * (half if h else 1.0), 3)


def brute_force(m, gains, objective, constraints, cost, budget):
  """Best partition (objective, cost) where each singleton may be half-size, or None."""
  tasks = NAMES[:m]
  best = None
  for partition in bf.set_partitions(list(range(m))):
    if not bf.count_ok(constraints, len(partition)):
      continue
    if not all(bf.group_allowed(tasks, objective, constraints, set(g)) for g in partition):
      continue
    value = sum(bf.group_score(gains, objective, g) for g in partition)
    options = [[(tuple(sorted(g)), False)] + ([(tuple(g), True)] if
                                                budget.allow_half_size and len(g) == 1 else [])
               for g in partition]
    for choice in itertools.product(*options):
      costs = [cost(g, h) for g, h in choice]
      if budget.max_network_cost is not None and max(costs) > budget.max_network_cost:
        continue
      if budget.total is not None and sum(costs) > budget.total + 1e-9:
        continue
      if best is None or value > best[0] + 1e-9:
        best = (value, sum(costs))
  return best


def check_costs(got, cost, budget):
  """The reported costs are the networks' costs, within every limit."""
  for group, c, h in zip(got.groups, got.network_costs, got.half_size):
    idx = tuple(NAMES.index(t) for t in group)
    assert c == cost(idx, h) and (not h or len(group) == 1)
    assert budget.max_network_cost is None or c <= budget.max_network_cost
  assert budget.total is None or got.total_cost <= budget.total + 1e-9


@st.composite
def instances(draw):
  m = draw(st.integers(2, 5))
  rng = np.random.default_rng(draw(st.integers(0, 2**31)))
  gains = rng.normal(size=(m, m)).round(3)
  cost = cost_table(rng, m)
  singles = [cost((t,), False) for t in range(m)]
  whole = cost(tuple(range(m)), False)
  # One network for all is the cheapest full-size partition, STL the dearest:
  # budgets across that range bind often; a little below it, only half-size
  # networks (or nothing) fit. Caps between the dearest single and the whole.
  # Mostly below what the unconstrained best partition costs, so the budget binds.
  best = max(bf.set_partitions(list(range(m))),
             key=lambda p: sum(bf.group_score(gains, "principled", g) for g in p))
  best_cost = sum(cost(tuple(sorted(g)), False) for g in best)
  total = draw(st.floats(0.8 * whole, max(best_cost, 0.8 * whole)))
  cap = draw(st.one_of(st.none(), st.floats(max(singles), whole)))
  half = draw(st.booleans())
  num_groups = draw(st.one_of(st.none(), st.none(), st.integers(1, m)))
  return m, gains, cost, Budget(cost=cost, total=total, max_network_cost=cap,
                                allow_half_size=half), Constraints(num_groups=num_groups)


@pytest.mark.parametrize("objective", ["principled", "marginal"])
def test_budgeted_partition_matches_brute_force(objective):
  @seed(zlib.crc32(objective.encode()))
  @settings(**SETTINGS)
  @given(instances())
  def check(instance):
    m, gains, cost, budget, constraints = instance
    expected = brute_force(m, gains, objective, constraints, cost, budget)
    try:
      got = solve_grouping(NAMES[:m], gains, objective, constraints, budget=budget)
    except InfeasibleError as e:
      assert expected is None, (expected, str(e))
      return
    assert expected is not None, got
    assert got.objective == pytest.approx(expected[0], abs=1e-7)
    check_costs(got, cost, budget)
  check()


@st.composite
def cover_instances(draw, objective):
  m = draw(st.integers(3, 5))
  rng = np.random.default_rng(draw(st.integers(0, 2**31)))
  gains = rng.normal(size=(m, m)).round(3)
  cost = cost_table(rng, m)
  half = objective != "tag" and draw(st.booleans())
  count = draw(st.sampled_from(["num_groups", "max_groups", None]))
  constraints = Constraints(**({} if count is None else {count: draw(st.integers(1, m))}))
  # Totals from a little below the cheapest cover (only half-size networks
  # then save it, if anything) to what the unconstrained best costs bind; caps
  # from the least that leaves every task a network (its cheapest) up to the
  # network of all tasks.
  value, spent = bf.cover_choices(NAMES[:m], gains, objective, constraints, cost,
                                  half_size=half)
  low = high = 1.0  # no cover whatever the budget
  if len(value):
    low = spent.min()
    high = max(low, spent[value >= value.max() - 1e-9].min())
  total = draw(st.one_of(st.none(), st.floats(low, high), st.floats(0.95 * low, high)))
  size = 2 if objective == "tag" else 1
  least = max(min(cost(g, False) for g in itertools.combinations(range(m), size) if t in g)
              for t in range(m))
  cap = draw(st.one_of(st.none(), st.floats(least, cost(tuple(range(m)), False))))
  return m, gains, cost, Budget(cost=cost, total=total, max_network_cost=cap,
                                allow_half_size=half), constraints


@pytest.mark.parametrize("objective", ["tag", "hoa"])
def test_budgeted_cover_matches_brute_force(objective):
  @seed(zlib.crc32(b"cover " + objective.encode()))
  @settings(**dict(SETTINGS, max_examples=150))
  @given(cover_instances(objective))
  def check(instance):
    m, gains, cost, budget, constraints = instance
    value, spent = bf.cover_choices(NAMES[:m], gains, objective, constraints, cost,
                                    budget.max_network_cost, budget.allow_half_size)
    if budget.total is not None:
      value = value[spent <= budget.total + 1e-9]
    expected = value.max() if len(value) else None
    try:
      got = solve_grouping(NAMES[:m], gains, objective, constraints, overlap=True,
                           budget=budget)
    except InfeasibleError as e:
      assert expected is None, (expected, str(e))
      return
    assert expected is not None, got
    assert got.objective == pytest.approx(expected, abs=1e-7)
    bf.verify_grouping(got, gains, objective, constraints, overlap=True)
    check_costs(got, cost, budget)
  check()


def test_half_size_singletons_are_chosen_to_fit_a_budget():
  gains = np.eye(3)  # every task alone is best
  cost = lambda g, h: 0.5 if h else float(len(g))
  full = solve_grouping(list("abc"), gains, "principled", budget=Budget(cost=cost, total=3))
  assert full.groups == (("a",), ("b",), ("c",)) and full.total_cost == 3
  tight = Budget(cost=cost, total=1.5, allow_half_size=True)
  got = solve_grouping(list("abc"), gains, "principled", budget=tight)
  assert got.half_size == (True, True, True) and got.total_cost == 1.5
  assert Grouping.from_json(got.to_json()) == got


def test_infeasible_budget_names_the_binding_limit():
  cost = lambda g, h: float(len(g)) + 1.0
  with pytest.raises(InfeasibleError, match=r"budget=2.5 \(params\).*relaxing budget"):
    solve_grouping(list("abc"), np.zeros((3, 3)), "principled",
                   budget=Budget(cost=cost, total=2.5, cost_model="params"))
  # A cap below every network that holds task c: the cap is the culprit.
  cost_c = lambda g, h: 10.0 if 2 in g else 1.0
  with pytest.raises(InfeasibleError, match=r"max_network_cost=5.*relaxing max_network_cost"):
    solve_grouping(list("abc"), np.zeros((3, 3)), "principled",
                   budget=Budget(cost=cost_c, max_network_cost=5))


def test_bad_budgets_are_user_errors():
  with pytest.raises(UserError, match="budget must be a finite number >= 0"):
    Budget(cost=lambda g, h: 1.0, total=-1)
  with pytest.raises(UserError, match="cost of network \\[0\\] is nan"):
    solve_grouping(["a"], [[0.0]], "principled",
                   budget=Budget(cost=lambda g, h: float("nan"), total=1))
  with pytest.raises(UserError, match="objective 'tag' cannot score"):
    solve_grouping(list("ab"), np.zeros((2, 2)), "tag",
                   budget=Budget(cost=lambda g, h: 1.0, allow_half_size=True))


@pytest.mark.parametrize("half", [False, True])
def test_frontier_is_monotone_within_budget_and_exact_at_every_point(half):
  from tgroup.grouping.frontier import budget_frontier, frontier_json
  rng = np.random.default_rng(7 + half)
  for _ in range(6):
    m = int(rng.integers(3, 6))
    gains = rng.normal(size=(m, m)).round(3)
    cost = cost_table(rng, m)
    budget = Budget(cost=cost, allow_half_size=half, cost_model="toy")
    points = budget_frontier(NAMES[:m], gains, "principled", budget, 8)
    assert len(points) == 8
    assert all(p.cost <= p.budget + 1e-9 for p in points)
    predicted = [p.predicted for p in points]
    assert all(a <= b + 1e-12 for a, b in zip(predicted, predicted[1:]))
    free = brute_force(m, gains, "principled", Constraints(), cost, budget)
    assert predicted[-1] == pytest.approx(free[0], abs=1e-7)
    for p in points:  # each point is the brute-force optimum at its budget
      at = Budget(cost=cost, total=p.budget, allow_half_size=half)
      assert p.predicted == pytest.approx(
          brute_force(m, gains, "principled", Constraints(), cost, at)[0], abs=1e-7)
    data = frontier_json(points, "toy", {0: 1.5})
    assert data["cost_model"] == "toy" and data["points"][0]["test_total"] == 1.5
    assert data["points"][1]["test_total"] is None


def test_frontier_of_infeasible_constraints_names_the_cap():
  from tgroup.grouping.frontier import budget_frontier
  cost = lambda g, h: 10.0 if 2 in g else 1.0
  with pytest.raises(InfeasibleError, match="relaxing max_network_cost"):
    budget_frontier(list("abc"), np.zeros((3, 3)), "principled",
                    Budget(cost=cost, max_network_cost=5), 4)
