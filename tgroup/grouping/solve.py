"""Group tasks from a gains matrix: candidates, scores, selection, diagnosis."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.budget import Budget
from tgroup.grouping.candidates import build_candidates
from tgroup.grouping.colgen import solve_by_columns
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.infeasible import explain_infeasible
from tgroup.grouping.problem import SelectionProblem
from tgroup.grouping.result import Grouping
from tgroup.grouping.scores import check_gains
from tgroup.grouping.scores import check_objective
from tgroup.grouping.scores import task_scores


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
  """The task names as a tuple, checked: a non-empty sequence of distinct str."""
  if isinstance(tasks, str):
    raise UserError(f"tasks must be a sequence of names, got the str {tasks!r}")
  tasks = tuple(tasks)
  if not tasks:
    raise UserError("there are no tasks to group")
  for t in tasks:
    if not isinstance(t, str):
      raise UserError(f"task names must be str, got {t!r}")
  seen = set()
  for t in tasks:
    if t in seen:
      raise UserError(f"task {t!r} appears twice in tasks")
    seen.add(t)
  return tasks


def _obvious_contradictions(tasks, objective, constraints, overlap) -> None:
  """Contradictions that need no solver get a direct message."""
  m = len(tasks)
  prefix = "no grouping satisfies the constraints: "
  if constraints.num_groups is not None and constraints.num_groups > m:
    why = ("a partition has at most one group per task" if not overlap else
           "every chosen group must serve at least one task")
    raise InfeasibleError(f"{prefix}num_groups={constraints.num_groups} "
                          f"exceeds the {m} tasks ({why})")
  if objective == "tag":
    if m < 2:
      raise InfeasibleError(f"{prefix}objective 'tag' needs groups of at "
                            "least 2 tasks, but there is 1 task")
    if constraints.alone:
      raise InfeasibleError(
          f"{prefix}alone={list(constraints.alone)} asks for singleton "
          "groups, which objective 'tag' cannot score")


def gains_problem(tasks: tuple[str, ...], gains: np.ndarray, objective: str,
                  constraints: Constraints, overlap: bool, max_candidates: int, seed: int,
                  budget: Budget | None, zero_scores: bool = False) -> SelectionProblem:
  """The selection problem of grouping `tasks` by `gains` (inputs already checked).

  Candidates are every allowed group or generated columns (see
  :func:`~tgroup.grouping.candidates.build_candidates`), scored by
  :func:`~tgroup.grouping.scores.task_scores`; a budget adds each singleton
  again as a half-size network if it allows them, prices every candidate and
  drops those above its per-network cap.

  Args:
    tasks, gains, objective, constraints, overlap, max_candidates, seed,
      budget: as for :func:`solve_grouping`.
    zero_scores: score every member 0, for feasibility checks: the objective
      is irrelevant there and zeros solve fastest.
  """
  membership, kind = build_candidates(tasks, gains, objective, constraints,
                                      max_candidates, seed)
  return _problem(membership, kind, gains, objective, constraints, overlap, budget,
                  zero_scores)


def _problem(membership, kind, gains, objective, constraints, overlap, budget,
             zero_scores=False) -> SelectionProblem:
  """The selection problem over candidate rows `membership` (see :func:`gains_problem`)."""
  if zero_scores:
    scores = np.where(membership, 0.0, np.nan)
  else:
    scores = task_scores(membership, gains, objective)
  half = np.zeros(len(membership), bool)
  if budget is not None and budget.allow_half_size:
    # Every singleton again, as a half-size network with the same score.
    single = membership.sum(axis=1) == 1
    membership = np.concatenate([membership, membership[single]])
    scores = np.concatenate([scores, scores[single]])
    half = np.concatenate([half, np.ones(int(single.sum()), bool)])
  sets = tuple(frozenset(np.flatnonzero(row).tolist()) for row in membership)
  return SelectionProblem(sets, scores, overlap, half_size=half,
                          num_groups=constraints.num_groups,
                          max_groups=constraints.max_groups, candidates=kind).priced(budget)


def solve_grouping(tasks: Sequence[str], gains, objective: str = "principled",
                   constraints: Constraints = Constraints(),
                   overlap: bool = False, max_candidates: int = 2**16,
                   time_limit_s: float | None = None,
                   seed: int = 0, budget: Budget | None = None) -> Grouping:
  """The best grouping of tasks under constraints, as a linear MIP.

  Every allowed group is a candidate when there are at most `max_candidates`
  of them (exact; m up to about 16 without size caps), otherwise columns are
  generated (:mod:`tgroup.grouping.colgen`): heuristic columns, then column
  generation against the LP relaxation's duals, CBC over every column found, and
  a certified upper bound on the true optimum; the result says which
  (``candidates``), the bound and the relative gap (``bound``, ``gap``), and is
  "optimal" only when the gap is closed. With a budget, generated candidates stay
  the heuristic ones, without a bound.

  Args:
    tasks: task names, in the order of the gains' rows and columns.
    gains: (m, m) array; ``gains[i][j]`` is what task j receives from task i.
    objective: how a task scores in group S: "principled" (the mean of
      ``gains[i][a]`` over i in S, the self-pair included), "marginal" (the
      sum over i != a divided by |S|; a singleton scores 0) or "tag" (the
      mean over i != a; singleton groups are not allowed). A group scores the
      sum of its tasks' scores.
    constraints: see :class:`Constraints`.
    overlap: False for a partition; True for a cover (a task may be in
      several groups and is served by its best one, as TAG selects).
    max_candidates: the most candidate groups to enumerate exhaustively.
    time_limit_s: the wall-clock limit of the solve: CBC's over all candidates;
      over generated ones, of column generation, its bound and CBC together (it
      stops pricing early and reports the gap reached). None: CBC over all
      candidates is not limited; column generation stops after
      :data:`~tgroup.grouping.colgen.DEFAULT_COLGEN_S` seconds and each CBC solve
      over its columns after :data:`~tgroup.grouping.colgen.DEFAULT_CBC_S`.
    seed: seeds the random part of column generation.
    budget: network costs and limits on them (see
      :class:`~tgroup.grouping.budget.Budget`): a total over the chosen
      networks, a cap per network, half-size single-task networks as extra
      candidates. The result then reports each network's cost.

  Returns:
    A :class:`Grouping`.

  Raises:
    UserError: malformed input (unknown task, non-finite gain, bad value).
    InfeasibleError: nothing satisfies the constraints; the message names the
      constraints whose removal would make it feasible.

  Examples:
    >>> gains = [[0.0, 1.0, -1.0],
    ...          [1.0, 0.0, -1.0],
    ...          [-1.0, -1.0, 0.0]]
    >>> g = solve_grouping(["a", "b", "c"], gains, objective="marginal")
    >>> g.groups, g.objective, g.status, g.candidates
    ((('a', 'b'), ('c',)), 1.0, 'optimal', 'all')
    >>> solve_grouping(["a", "b", "c"], gains, objective="marginal",
    ...                constraints=Constraints(cannot_link=[("a", "b")])).groups
    (('a',), ('b',), ('c',))
    >>> gains[0][2] = -0.5  # c now gains least badly from a
    >>> solve_grouping(["a", "b", "c"], gains, "tag", overlap=True).groups
    (('a', 'b'), ('a', 'c'))
  """
  tasks = check_tasks(tasks)
  g = check_gains(gains, tasks)
  check_objective(objective)
  if not isinstance(constraints, Constraints):
    raise UserError(f"constraints must be a Constraints, got "
                    f"{type(constraints).__name__}")
  constraints.check_tasks(tasks)
  if isinstance(max_candidates, bool) or not isinstance(
      max_candidates, (int, np.integer)) or max_candidates < 1:
    raise UserError(f"max_candidates must be a positive integer, got "
                    f"{max_candidates!r}")
  _obvious_contradictions(tasks, objective, constraints, overlap)
  if budget is not None and not isinstance(budget, Budget):
    raise UserError(f"budget must be a Budget, got {type(budget).__name__}")
  if budget is not None and budget.allow_half_size and objective == "tag":
    raise UserError("half-size networks serve single tasks, which objective 'tag' "
                    "cannot score")

  if time_limit_s is not None and not (isinstance(time_limit_s, (int, float, np.number))
                                       and not isinstance(time_limit_s, bool)
                                       and time_limit_s > 0):
    raise UserError(f"time_limit_s must be positive, got {time_limit_s!r}")

  start = time.monotonic()
  membership, kind = build_candidates(tasks, g, objective, constraints, max_candidates, seed)
  if kind == "generated" and budget is None:
    left = (None if time_limit_s is None
            else max(0.1 * time_limit_s, time_limit_s - (time.monotonic() - start)))
    columns = solve_by_columns(tasks, g, objective, constraints, overlap, membership,
                               left, seed)
    if columns.found is None:
      # Proven infeasible: no note about generated candidates is due.
      raise InfeasibleError(_diagnose(tasks, g, objective, constraints, overlap,
                                      max_candidates, seed,
                                      "all" if columns.infeasible else kind, budget))
    return columns.problem.grouping(tasks, columns.found, objective, constraints, None,
                                    bound=columns.bound)
  problem = _problem(membership, kind, g, objective, constraints, overlap, budget)
  found = problem.solve(time_limit_s)
  if found is None:
    raise InfeasibleError(_diagnose(tasks, g, objective, constraints, overlap,
                                    max_candidates, seed, problem.candidates, budget))
  return problem.grouping(tasks, found, objective, constraints, budget)


def _diagnose(tasks, gains, objective, constraints, overlap, max_candidates,
              seed, kind, budget=None) -> str:
  """Explains infeasibility by relaxing one constraint (or budget limit) at a time."""

  def feasible(c, obj=objective, b=budget):
    problem = gains_problem(tasks, gains, obj, c, overlap, max_candidates, seed, b,
                            zero_scores=True)
    return problem.solve() is not None

  active = [(name, constraints.describe(name))
            for name in constraints.active()]
  limits = budget.active() if budget is not None else ()
  active += [(name, budget.describe(name)) for name in limits]
  note = ""
  if objective == "tag" and feasible(constraints, obj="marginal"):
    note = " when objective 'tag' allows no singleton groups"
  if kind == "generated":
    note += (" among the generated candidates (raise max_candidates for an "
             "exhaustive search)")

  def feasible_without(name):
    if name in limits:
      return feasible(constraints, b=budget.relaxed(name))
    return feasible(constraints.relaxed(name))

  return explain_infeasible(active, feasible_without,
                            f"cannot hold {len(tasks)} tasks", note=note)
