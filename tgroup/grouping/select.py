"""Choose among candidate groups with a linear MIP (python-mip, CBC).

This is the machinery every selection shares: grouping tasks from gains,
choosing trained networks from a loss table (Standley), and budgets. Inputs are
candidate task sets and each task's score in each candidate; it maximises.

Partition: x_c in {0, 1}; every task is in exactly one chosen candidate.
Cover: every task is served by exactly one chosen candidate containing it,
through a_{t,c} in {0, 1} with a_{t,c} <= x_c and sum_c a_{t,c} = 1; the
objective sums the serving scores, so each task ends up served by its best
chosen candidate.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import NamedTuple

import mip
import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.infeasible import explain_infeasible

# CBC's own randomness (e.g. in its heuristics) is seeded so that reruns
# return the same groups, not just the same objective.
_CBC_SEED = 0


class Selection(NamedTuple):
  """What :func:`select_candidates` chose.

  Attributes:
    chosen: indices of the chosen candidates, ascending.
    assignment: task index -> index of the chosen candidate serving it.
    objective: sum over tasks of their serving score, recomputed exactly from
      the scores (not CBC's floating objective).
    status: "optimal" when CBC proved optimality, "feasible" when a time
      limit stopped it with a solution.
  """
  chosen: tuple[int, ...]
  assignment: dict[int, int]
  objective: float
  status: str


def _members(candidates: Sequence[frozenset[int]], task_scores) -> np.ndarray:
  scores = np.asarray(task_scores, dtype=np.float64)
  if scores.ndim != 2 or scores.shape[0] != len(candidates):
    raise UserError(f"task_scores must be (number of candidates={len(candidates)}"
                    f", number of tasks), got shape {scores.shape}")
  n, m = scores.shape
  member = np.zeros((n, m), dtype=bool)
  for c, cand in enumerate(candidates):
    tasks = list(cand)
    if not tasks:
      raise UserError(f"candidate {c} is empty")
    for t in tasks:
      try:
        ok = not isinstance(t, bool) and 0 <= operator.index(t) < m
      except TypeError:
        ok = False
      if not ok:
        raise UserError(f"candidate {c} holds {t!r}, not a task index in "
                        f"[0, {m})")
    member[c, [operator.index(t) for t in tasks]] = True
  finite = np.isfinite(scores)
  bad = np.argwhere(member != finite)
  if len(bad):
    c, t = bad[0]
    if member[c, t]:
      raise UserError(f"task_scores[{c}, {t}] is {scores[c, t]} but task {t} "
                      f"is in candidate {c}; scores of members must be finite")
    raise UserError(f"task_scores[{c}, {t}] is {scores[c, t]} but task {t} is "
                    f"not in candidate {c}; non-members must be NaN")
  return member


def _fast_settings(model: mip.Model) -> None:
  """CBC settings measured to suit these wide, short models.

  With every subset as a column (65519 columns for 16 tasks), CBC's defaults
  spend 17 s looking for symmetry (nauty) and a further 30 s generating cuts
  on a model whose LP relaxation was already integral; turning both off, and
  the preprocessing, solved it in 0.5 s. Covers got 2-4x faster likewise.
  """
  model.cuts = 0
  model.preprocess = 0
  # Symmetry detection has no python-mip option; this is its CBC parameter,
  # set through python-mip 1.15's helper (guarded: the helper is internal).
  set_parameter = getattr(getattr(mip, "cbc", None), "cbc_set_parameter", None)
  if set_parameter is not None:
    set_parameter(model.solver, "OrbitalBranching", "off")


def _optimize(model: mip.Model, time_limit_s: float | None):
  # CBC's automatic LP method ("idiot" crash) abandons some infeasible models
  # whose objective is all zeros, which feasibility checks and zero gains
  # produce; the dual simplex proves them infeasible. Other methods are a
  # fallback should one ever abandon.
  limit = {} if time_limit_s is None else {"max_seconds": float(time_limit_s)}
  for method in (mip.LP_Method.DUAL, mip.LP_Method.PRIMAL,
                 mip.LP_Method.BARRIER):
    model.lp_method = method
    status = model.optimize(**limit)
    if status != mip.OptimizationStatus.ERROR:
      break
  return status


def try_select_candidates(
    candidates: Sequence[frozenset[int]], task_scores: np.ndarray,
    overlap: bool, num_groups: int | None = None, max_groups: int | None = None,
    costs: Sequence[float] | None = None, budget: float | None = None,
    time_limit_s: float | None = None, minimise_cost: bool = False) -> Selection | None:
  """Like :func:`select_candidates`, but returns None when infeasible.

  The infeasibility diagnosis of callers (which relax constraints one at a
  time) needs the bare answer, not an exception with an explanation.

  With ``minimise_cost`` the scores are ignored and the chosen candidates' total
  cost is minimised instead (``budget`` may then be None): the cheapest
  selection that satisfies the other constraints, where a budget sweep starts.
  The returned objective is still the scores' sum of that selection.

  Examples:
    >>> print(try_select_candidates([frozenset({0, 1})], [[1.0, 1.0]], False,
    ...                             num_groups=2))
    None
  """
  member = _members(candidates, task_scores)
  scores = np.where(member, np.asarray(task_scores, dtype=np.float64), 0.0)
  n, m = member.shape
  if minimise_cost and costs is None:
    raise UserError("minimise_cost needs costs")
  if (costs is None) != (budget is None) and not minimise_cost:
    raise UserError("costs and budget go together: give both or neither")
  if costs is not None:
    costs = np.asarray(costs, dtype=np.float64)
    if costs.shape != (n,) or not np.isfinite(costs).all():
      raise UserError(f"costs must be {n} finite numbers, one per candidate")
    if budget is not None and (not isinstance(budget, (int, float, np.number))
                               or not math.isfinite(float(budget))):
      raise UserError(f"budget must be a finite number, got {budget!r}")
  if time_limit_s is not None and not time_limit_s > 0:
    raise UserError(f"time_limit_s must be positive, got {time_limit_s}")
  if not member.any(axis=0).all():
    return None

  model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
  model.verbose = 0
  # 0 = CBC's serial default. threads=1 runs CBC's threaded search with one
  # worker, which was measured to sit idle ~10 s in some solves (a 73-test
  # property file: 96 s wall for 16 s of CPU; with 0: 15.5 s).
  model.threads = 0
  model.seed = _CBC_SEED
  # Exact optimality, not CBC's default 0.01% gap: results are compared with
  # brute force and between runs.
  model.max_mip_gap = 0.0
  model.max_mip_gap_abs = 0.0
  _fast_settings(model)
  x = [model.add_var(var_type=mip.BINARY) for _ in range(n)]
  by_task = [np.flatnonzero(member[:, t]) for t in range(m)]
  if overlap:
    a = {(c, t): model.add_var(var_type=mip.BINARY)
         for t in range(m) for c in by_task[t]}
    for t in range(m):
      model += mip.xsum(a[c, t] for c in by_task[t]) == 1
    for (c, t), var in a.items():
      model += var <= x[c]
    # A chosen group must serve a task: otherwise an exact num_groups could be
    # met with useless groups, and groups in the answer would serve no one.
    for c in range(n):
      model += mip.xsum(a[c, t] for t in np.flatnonzero(member[c])) >= x[c]
    model.objective = mip.xsum(float(scores[c, t]) * var
                               for (c, t), var in a.items())
  else:
    for t in range(m):
      model += mip.xsum(x[c] for c in by_task[t]) == 1
    model.objective = mip.xsum(float(v) * x[c]
                               for c, v in enumerate(scores.sum(axis=1)))
  if num_groups is not None:
    model += mip.xsum(x) == int(num_groups)
  if max_groups is not None:
    model += mip.xsum(x) <= int(max_groups)
  if costs is not None and budget is not None:
    model += mip.xsum(float(k) * x[c] for c, k in enumerate(costs)) <= float(
        budget)
  if minimise_cost:
    model.objective = -mip.xsum(float(k) * x[c] for c, k in enumerate(costs))

  status = _optimize(model, time_limit_s)
  if status in (mip.OptimizationStatus.INFEASIBLE,
                mip.OptimizationStatus.INT_INFEASIBLE):
    return None
  if status == mip.OptimizationStatus.NO_SOLUTION_FOUND:
    if time_limit_s is not None:
      raise UserError(f"CBC found no solution within time_limit_s="
                      f"{time_limit_s}; raise the limit")
    raise RuntimeError("CBC stopped without a solution or a proof")
  if status not in (mip.OptimizationStatus.OPTIMAL,
                    mip.OptimizationStatus.FEASIBLE):
    raise RuntimeError(f"CBC returned {status}")

  chosen = tuple(c for c in range(n) if x[c].x >= 0.5)
  if overlap:
    assignment = {t: next(c for c in by_task[t] if a[c, t].x >= 0.5)
                  for t in range(m)}
  else:
    assignment = {t: next(c for c in chosen if member[c, t])
                  for t in range(m)}
  assignment = {t: int(c) for t, c in assignment.items()}
  objective = math.fsum(float(scores[c, t]) for t, c in assignment.items())
  return Selection(chosen, assignment, objective,
                   "optimal" if status == mip.OptimizationStatus.OPTIMAL
                   else "feasible")


def select_candidates(
    candidates: Sequence[frozenset[int]], task_scores: np.ndarray,
    overlap: bool, num_groups: int | None = None, max_groups: int | None = None,
    costs: Sequence[float] | None = None, budget: float | None = None,
    time_limit_s: float | None = None) -> Selection:
  """Chooses candidate groups that maximise the summed task scores.

  Args:
    candidates: task-index sets; duplicates are allowed (e.g. the same tasks
      as a half-size and a full-size network, with different scores/costs).
    task_scores: float (n_candidates, m); ``[c, t]`` is task t's score when
      served by candidate c, NaN when t is not in c. Maximised; pass negated
      losses to minimise losses.
    overlap: False for a partition (each task in exactly one chosen
      candidate); True for a cover (each task in at least one, served by
      exactly one, and every chosen candidate serves at least one task).
    num_groups: exact number of chosen candidates, or None.
    max_groups: at most this many chosen candidates, or None.
    costs: one cost per candidate; with `budget`, the chosen candidates' costs
      sum to at most `budget`.
    budget: see `costs`.
    time_limit_s: CBC's wall-clock limit; the status says whether optimality
      was proven.

  Returns:
    A :class:`Selection` ``(chosen, assignment, objective, status)``.

  Raises:
    InfeasibleError: nothing satisfies the constraints; the message names the
      constraints whose removal would make it feasible.
    UserError: malformed inputs.

  Examples:
    >>> import numpy as np
    >>> nan = np.nan
    >>> cands = [frozenset({0}), frozenset({1}), frozenset({0, 1})]
    >>> scores = np.array([[1.0, nan], [nan, 1.0], [3.0, 0.5]])
    >>> select_candidates(cands, scores, overlap=False)
    Selection(chosen=(2,), assignment={0: 2, 1: 2}, objective=3.5, \
status='optimal')
    >>> select_candidates(cands, scores, overlap=True, num_groups=2).chosen
    (1, 2)
    >>> select_candidates(cands, scores, overlap=True, costs=[1, 1, 3],
    ...                   budget=2).objective
    2.0
  """
  args = dict(num_groups=num_groups, max_groups=max_groups, costs=costs,
              budget=budget)
  found = try_select_candidates(candidates, task_scores, overlap,
                                time_limit_s=time_limit_s, **args)
  if found is not None:
    return found
  member = _members(candidates, task_scores)
  uncovered = np.flatnonzero(~member.any(axis=0))
  if len(uncovered):
    raise InfeasibleError(
        f"no selection satisfies the constraints: task {int(uncovered[0])} is "
        "in no candidate")
  active = [(name, f"{name}={args[name]}")
            for name in ("num_groups", "max_groups", "budget")
            if args[name] is not None]
  # Feasibility does not depend on the scores; zeros make the checks cheap.
  zeros = np.where(member, 0.0, np.nan)

  def feasible_without(name):
    relaxed = dict(args, **{name: None})
    if name == "budget":
      relaxed["costs"] = None
    return try_select_candidates(candidates, zeros, overlap,
                                 **relaxed) is not None

  raise InfeasibleError(explain_infeasible(
      active, feasible_without, f"cannot serve {member.shape[1]} tasks",
      subject="selection"))
