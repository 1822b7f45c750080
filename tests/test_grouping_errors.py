"""Mistakes and impossible constraints end in one clear message."""
import math
import re

import numpy as np
import pytest

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping import (Constraints, Grouping, select_candidates,
                             solve_grouping)

TASKS = tuple(f"t{i}" for i in range(9))


def _solve(m, constraints, objective="marginal", overlap=False, gains=None):
  gains = np.zeros((m, m)) if gains is None else gains
  return solve_grouping(TASKS[:m], gains, objective, constraints,
                        overlap=overlap)


def _relaxing(message):
  """The constraint names after "relaxing ..." in an infeasibility message."""
  found = re.search(r"relaxing (?:any one of )?([\w, ]+?) makes it feasible",
                    message)
  assert found, message
  return set(found.group(1).split(", "))


@pytest.mark.parametrize("constraints, m, overlap, culprits", [
    (Constraints(num_groups=2, max_group_size=3), 9, False,
     {"num_groups", "max_group_size"}),
    (Constraints(max_groups=2, max_group_size=3), 9, True,
     {"max_groups", "max_group_size"}),
    (Constraints(num_groups=1, cannot_link=[("t0", "t1")]), 3, False,
     {"num_groups", "cannot_link"}),
    (Constraints(min_group_size=4), 3, False, {"min_group_size"}),
    (Constraints(num_groups=3, min_group_size=2), 4, False,
     {"num_groups", "min_group_size"}),
    (Constraints(max_groups=1, alone=["t0"]), 4, True, {"max_groups", "alone"}),
    (Constraints(max_group_size=2, must_link=[("t0", "t1"), ("t1", "t2")]), 4,
     False, {"max_group_size", "must_link"}),
    (Constraints(max_groups=2, alone=["t3"],
                 cannot_link=[("t0", "t1"), ("t1", "t2"), ("t0", "t2")]), 4,
     False, {"max_groups", "cannot_link"}),
])
def test_infeasible_names_the_culprits(constraints, m, overlap, culprits):
  with pytest.raises(InfeasibleError) as info:
    _solve(m, constraints, overlap=overlap)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith("no grouping satisfies the constraints: ")
  assert _relaxing(message) == culprits
  for name in culprits:
    assert constraints.describe(name) in message


def test_infeasible_example_from_the_brief():
  with pytest.raises(InfeasibleError, match=re.escape(
      "no grouping satisfies the constraints: num_groups=2 with "
      "max_group_size=3 cannot hold 9 tasks (relaxing any one of num_groups, "
      "max_group_size makes it feasible)")):
    _solve(9, Constraints(num_groups=2, max_group_size=3))


def test_no_single_relaxation():
  # Two independent contradictions: alone vs. min_group_size, and one group
  # vs. cannot_link. Removing any one constraint leaves the other.
  constraints = Constraints(num_groups=1, min_group_size=2, alone=["t0"],
                            cannot_link=[("t1", "t2")])
  with pytest.raises(InfeasibleError, match="no single constraint"):
    _solve(3, constraints)


@pytest.mark.parametrize("constraints, overlap, pattern", [
    (Constraints(must_link=[("t0", "t1")], cannot_link=[("t1", "t0")]), False,
     "cannot_link .* contradicts must_link"),
    (Constraints(must_link=[("t0", "t1"), ("t1", "t2")],
                 cannot_link=[("t0", "t2")]), True,
     "cannot_link .* contradicts must_link"),
    (Constraints(must_link=[("t0", "t1")], alone=["t1"]), False,
     "'t1' is in alone but also in must_link"),
    (Constraints(num_groups=4), False, "num_groups=4 exceeds the 3 tasks"),
    (Constraints(num_groups=4), True, "num_groups=4 exceeds the 3 tasks"),
])
def test_direct_contradictions(constraints, overlap, pattern):
  with pytest.raises(InfeasibleError, match=pattern):
    _solve(3, constraints, overlap=overlap)


def test_tag_excludes_singletons():
  with pytest.raises(InfeasibleError, match="objective 'tag'"):
    _solve(3, Constraints(alone=["t0"]), objective="tag")
  with pytest.raises(InfeasibleError, match="at least 2 tasks"):
    _solve(1, Constraints(), objective="tag")
  with pytest.raises(InfeasibleError,
                     match="when objective 'tag' allows no singleton") as info:
    _solve(3, Constraints(num_groups=2), objective="tag")
  assert _relaxing(str(info.value)) == {"num_groups"}
  # A cover can overlap instead of leaving a task alone.
  assert len(_solve(3, Constraints(num_groups=2), objective="tag",
                    overlap=True).groups) == 2


@pytest.mark.parametrize("field, value", [
    ("must_link", [("t0", "x")]), ("cannot_link", [("zz", "t1")]),
    ("alone", ["nope"])])
def test_unknown_task_lists_valid_names(field, value):
  with pytest.raises(UserError, match="unknown task .*valid tasks: t0, t1, t2"):
    _solve(3, Constraints(**{field: value}))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_gains_named(bad):
  gains = np.zeros((3, 3))
  gains[2, 1] = bad
  with pytest.raises(UserError, match=re.escape(
      f"gains[2][1] (source 't2', target 't1') is {bad}")):
    _solve(3, Constraints(), gains=gains)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(gains=np.zeros((2, 2))), "must be 3x3"),
    (dict(gains=[["a", 1, 2]] * 3), "array of numbers"),
    (dict(objective="best"), "unknown grouping objective 'best'"),
    (dict(tasks=("a", "a", "b")), "appears twice"),
    (dict(tasks="abc"), "sequence of names"),
    (dict(tasks=()), "no tasks"),
    (dict(max_candidates=0), "max_candidates"),
    (dict(constraints={"num_groups": 2}), "must be a Constraints"),
    (dict(time_limit_s=0), "time_limit_s"),
])
def test_bad_arguments(kwargs, pattern):
  args = dict(tasks=TASKS[:3], gains=np.zeros((3, 3)), objective="marginal",
              constraints=Constraints())
  args.update(kwargs)
  if "tasks" in kwargs and "gains" not in kwargs:
    args["gains"] = np.zeros((len(args["tasks"]),) * 2)
  with pytest.raises(UserError, match=pattern):
    solve_grouping(**args)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(num_groups=0), "num_groups must be a positive integer"),
    (dict(max_groups=-1), "max_groups must be a positive integer"),
    (dict(num_groups=True), "num_groups must be a positive integer"),
    (dict(max_group_size=2.5), "max_group_size must be a positive integer"),
    (dict(min_group_size=0), "min_group_size"),
    (dict(min_group_size=3, max_group_size=2), "exceeds max_group_size"),
    (dict(num_groups=3, max_groups=2), "exceeds max_groups"),
    (dict(cannot_link=[("a", "a")]), "links a task to itself"),
    (dict(must_link=[("a", "a")]), "links a task to itself"),
    (dict(must_link=[("a", "b", "c")]), "pairs of task names"),
    (dict(must_link=["ab"]), "pairs of task names"),
    (dict(alone="a"), "sequence of task names"),
    (dict(alone=[1]), "task names"),
])
def test_nonsense_constraints(kwargs, pattern):
  with pytest.raises(UserError, match=pattern):
    Constraints(**kwargs)


def test_constraints_json_round_trip():
  c = Constraints(num_groups=2, max_group_size=3, must_link=[("a", "b")],
                  cannot_link=[["b", "c"]], alone=("d",))
  assert c.cannot_link == (("b", "c"),)
  data = c.to_json()
  assert data == {"num_groups": 2, "max_groups": None, "min_group_size": 1,
                  "max_group_size": 3, "must_link": [["a", "b"]],
                  "cannot_link": [["b", "c"]], "alone": ["d"]}
  assert Constraints.from_json(data) == c
  with pytest.raises(UserError, match="unknown constraint"):
    Constraints.from_json({"num_group": 2})


def test_select_candidates_budget():
  cands = [frozenset({0}), frozenset({1}), frozenset({0, 1})]
  scores = np.array([[1.0, np.nan], [np.nan, 1.0], [3.0, 3.0]])
  free = select_candidates(cands, scores, overlap=False)
  assert free.chosen == (2,)
  cheap = select_candidates(cands, scores, overlap=False, costs=[0.5, 0.5, 2],
                            budget=1.5)
  assert cheap.chosen == (0, 1) and cheap.objective == 2.0
  with pytest.raises(InfeasibleError, match="budget=0.5") as info:
    select_candidates(cands, scores, overlap=True, costs=[0.5, 0.5, 2],
                      budget=0.5)
  assert _relaxing(str(info.value)) == {"budget"}
  with pytest.raises(InfeasibleError, match="task 1 is in no candidate"):
    select_candidates(cands[:1], scores[:1, :], overlap=True)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(task_scores=np.ones((3, 2))), "non-members must be NaN"),
    (dict(task_scores=np.full((3, 2), np.nan)), "must be finite"),
    (dict(task_scores=np.ones((2, 2))), "must be \\(number of candidates"),
    (dict(candidates=[frozenset(), frozenset({1}), frozenset({0, 1})]),
     "candidate 0 is empty"),
    (dict(candidates=[frozenset({0}), frozenset({5}), frozenset({0, 1})]),
     "not a task index"),
    (dict(costs=[1, 1, 1]), "costs and budget go together"),
    (dict(budget=1.0), "costs and budget go together"),
    (dict(costs=[1, 1], budget=1.0), "one per candidate"),
])
def test_select_candidates_bad_input(kwargs, pattern):
  args = dict(candidates=[frozenset({0}), frozenset({1}), frozenset({0, 1})],
              task_scores=np.array([[1.0, np.nan], [np.nan, 1.0], [3.0, 3.0]]),
              overlap=False)
  args.update(kwargs)
  with pytest.raises(UserError, match=pattern):
    select_candidates(**args)


def test_time_limit_reports_a_status():
  rng = np.random.default_rng(0)
  result = solve_grouping(TASKS[:6], rng.normal(size=(6, 6)), "marginal",
                          time_limit_s=5.0)
  assert result.status in ("optimal", "feasible")


def test_grouping_json():
  gains = [[0.0, 1.0, -1.0], [1.0, 0.0, -1.0], [-1.0, -1.0, 0.0]]
  result = solve_grouping(["a", "b", "c"], gains, "marginal",
                          Constraints(max_groups=2))
  data = result.to_json()
  assert data == {
      "tasks": ["a", "b", "c"], "groups": [["a", "b"], ["c"]],
      "objective": 1.0, "status": "optimal",
      "constraints": Constraints(max_groups=2).to_json(),
      "objective_name": "marginal", "candidates": "all",
      "assignment": {"a": 0, "b": 0, "c": 1}, "overlap": False,
      "bound": 1.0, "gap": 0.0}  # over all candidates, a proven optimum is its own bound
  assert Grouping.from_json(data) == result
  with pytest.raises(UserError, match="malformed grouping JSON"):
    Grouping.from_json({"tasks": ["a"]})
