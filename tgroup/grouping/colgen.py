"""Column generation: the best grouping over generated columns, with a certified bound.

When there are too many allowed groups to enumerate, the MIP chooses among columns. This
module makes those columns good and says how good: it solves the LP relaxation of the
master problem (:mod:`tgroup.grouping.select`'s partition or cover) over the current
columns, prices new groups against its duals (:mod:`tgroup.grouping.pricing`), and
repeats until no group improves; then CBC solves the integer master over every column
found, and a Lagrangian bound says how far from the true optimum that answer can be.

**The bound.** For duals ``pi`` (task rows) and ``mu`` (the group-count row; 0 without
one), every partition x over *all* allowed groups satisfies (each task in exactly one
chosen group)::

  z(x) = sum_t pi_t + mu * sum_c x_c + sum_c rc_c x_c,  rc_c = v_c - pi(c) - mu.

With ``sum_c x_c = p`` (any ``mu``) or ``<= M`` (``mu >= 0``), ``mu sum x <= mu K`` with K
= p or M, so ``z(x) <= L + sum_c rc_c x_c`` where ``L = sum pi + mu K`` is the restricted
LP's value. The chosen groups are at most K and hold m tasks in all, so with ``r_k`` an
upper bound on the reduced cost of any group of k tasks outside the master, and the
master's own columns counted by their positive parts,
``sum_c rc_c x_c <= sum_{c in master} max(0, rc_c) + max {sum_k n_k r_k : sum_k n_k <= K,
sum_k k n_k <= m, n >= 0}`` (a two-row LP solved at its vertices). That is Farley's
``z* <= z_LP + p max(0, max rc)`` with exactly p groups, ``z_LP + m max(0, max rc/|c|)``
without a count, and both at once with max_groups. It holds for *any* duals, so LP
tolerances cannot make it invalid, only looser.

A cover (every task served by one chosen group holding it; each chosen group serves at
least one task) gives the same inequality with ``rc_c`` the most a chosen group can add
to the Lagrangian over the subsets it may serve: ``sum_t max(0, w_t) + min(0, max_t w_t)
- mu`` with ``w_t = score_t(c) - pi_t``. Cover groups overlap, so only the count limits
their number (at most m without one: each serves a distinct task).

``r_k`` is exact when pricing is exact (enumeration, or a finished branch and bound);
when a time limit stops pricing it is the best open node's bound, never a heuristic's
value.

**Closing the gap.** If the integer optimum z_IP over the columns is below the bound, a
better solution x has ``sum_{c in x} rc_c > z_IP - L``; the other columns of x add at most
E (the sum of the N - 1 largest positive rc over all groups, N the most groups a solution
can have), so every column of x has rc above ``z_IP - L - E``. Adding every group above
that threshold (by enumeration, or a branch and bound that collects rather than
maximises) and solving again gives the true optimum: the bound is then the objective
itself. Pricing's last pass already puts every group above a small negative floor into
the pool, which settles it whenever the threshold is above the floor.

**Duals.** A degenerate master has a face of optimal duals, and the vertex the LP solver
returns can be where pricing bounds are weakest; with branch-and-bound pricing the duals
used are the mix of the face's vertices in a few directions whose root-bound bound is
least (:func:`_choose_duals`). Only some pool columns are in the LP at a time (those the
duals asked for), which keeps each LP solve in milliseconds.

Budgets price every network through an arbitrary cost function, which pricing cannot
search; with a budget the heuristic columns are kept as they are and no bound is given.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import mip
import numpy as np

from tgroup.grouping import pricing
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.problem import SelectionProblem
from tgroup.grouping.select import Selection
from tgroup.grouping.select import _fast_settings
from tgroup.grouping.select import _CBC_SEED

_log = logging.getLogger(__name__)

# Enumerate every allowed group for pricing when there are at most this many block
# subsets of allowed sizes (20 tasks without size caps); branch and bound above. A cover
# keeps every group's per-task scores, so it enumerates fewer (18 tasks).
ENUMERATE_LIMIT = 2**20
ENUMERATE_COVER_LIMIT = 2**18

# Without a time limit, column generation (pricing, bound, closing) stops after this many
# seconds and reports the gap it reached, and each CBC solve over the columns found after
# DEFAULT_CBC_S: on the self-pair gains of a 100-task run an unlimited CBC was still
# branching after 5 minutes and 5 GB; the status and gap say what a limited one reached.
DEFAULT_COLGEN_S = 60.0
DEFAULT_CBC_S = 60.0

# Shares of the time limit: pricing rounds stop at the first, the final bound's pricing
# at the second; CBC and closing the gap share what is left.
_PRICING_SHARE, _BOUND_SHARE = 0.55, 0.7

# Reduced costs above this (relative to the gains' scale) make a column improving; LP
# tolerances make smaller ones noise. The bound uses exact values, not this.
_IMPROVING = 1e-7

# A pricing round adds at most this many columns per block (and at least 20).
_PER_BLOCK = 2

# The first LP holds the singles and this many columns per block, the best per task.
_FIRST_PER_BLOCK = 10

# Closing the gap gives up beyond this many columns.
_CLOSE_LIMIT = 20000

# When no selection of the columns is feasible, every allowed group becomes a column if
# there are at most this many (as many as solve_grouping enumerates by default).
_ADD_ALL_LIMIT = 2**16


class ColumnResult(NamedTuple):
  """What column generation found.

  Attributes:
    problem: the selection problem over every column found (candidates "generated").
    found: CBC's selection over them, or None when they admit no feasible selection.
    bound: an upper bound on the true optimum over all allowed groups (equal to the
      objective when optimality was proven), or None when there is none.
    rounds: LP solves (pricing rounds).
    columns: columns in the master at the end.
    lp_value: the last restricted LP's value L (with its duals' Lagrangian meaning).
    converged: whether pricing proved that no group improves the LP.
    closed: whether the integrality gap was closed by adding every column that could
      be in a better solution.
    infeasible: whether the bound proved that no grouping satisfies the constraints
      (`found` is then None).
  """
  problem: SelectionProblem
  found: Selection | None
  bound: float | None
  rounds: int
  columns: int
  lp_value: float
  converged: bool
  closed: bool
  infeasible: bool = False


class _Master:
  """The restricted master LP over the current columns (python-mip, CBC's LP solver).

  Every column found is in the pool (its membership and scores, priced in bulk); only
  some are in the LP, whose solves then take milliseconds rather than the 0.2 s of
  twelve thousand heuristic columns. Artificial variables (penalised) keep the LP
  feasible whatever its columns: one per task row, and two on the exact count row.
  """

  def __init__(self, space: pricing.Space, num_groups: int | None, max_groups: int | None,
               penalty: float):
    self.space = space
    self.m = len(space.task_block)
    model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
    model.verbose = 0
    model.threads = 0
    model.seed = _CBC_SEED
    self.model = model
    # A row must hold a variable when it is created (CBC aborts the process on an
    # empty one); the artificials are those variables.
    self.art = [model.add_var(lb=0.0, obj=-penalty) for _ in range(self.m)]
    self.rows = [model.add_constr(self.art[t] == 1.0) for t in range(self.m)]
    self.count = None
    self.limit = 0
    self.sign = 0.0
    if num_groups is not None:
      up, down = (model.add_var(lb=0.0, obj=-penalty) for _ in range(2))
      self.count = model.add_constr(up - down == float(num_groups))
      self.limit, self.sign = int(num_groups), 0.0
    elif max_groups is not None:
      slack = model.add_var(lb=0.0, obj=0.0)
      self.count = model.add_constr(slack <= float(max_groups))
      self.limit, self.sign = int(max_groups), 1.0
    self.block_rows = np.zeros((0, space.num_blocks), dtype=bool)
    self.tasks = np.zeros((0, self.m), dtype=bool)
    self.scores = np.zeros((0, self.m))
    self.values = np.zeros(0)
    self.in_lp = np.zeros(0, dtype=bool)
    self.keys: dict[bytes, int] = {}
    self.on_add = None  # called with the block rows new to the pool

  def add(self, rows: np.ndarray, to_lp: bool = True) -> np.ndarray:
    """Adds the block rows not yet in the master to its pool (and, with `to_lp`, to the
    LP); returns the pool index of every row given."""
    rows = np.asarray(rows, dtype=bool).reshape(-1, self.space.num_blocks)
    index = np.empty(len(rows), dtype=np.int64)
    new = []
    for i, (row, key) in enumerate(zip(rows, pricing.row_keys(rows))):
      if key not in self.keys:
        self.keys[key] = len(self.keys)
        new.append(row)
      index[i] = self.keys[key]
    if new:
      new = np.array(new)
      tasks = self.space.tasks_of(new)
      scores = pricing.task_scores(tasks, self.space.gains, self.space.objective)
      self.block_rows = np.concatenate([self.block_rows, new])
      self.tasks = np.concatenate([self.tasks, tasks])
      self.scores = np.concatenate([self.scores, scores])
      self.values = np.concatenate([self.values, np.nansum(scores, axis=1)])
      self.in_lp = np.concatenate([self.in_lp, np.zeros(len(new), bool)])
      self._dense = None
      if self.on_add is not None:
        self.on_add(new)
    if to_lp:
      self.activate(index)
    return index

  def activate(self, columns) -> None:
    """Puts pool columns (indices) into the LP."""
    model, count = self.model, ([self.count] if self.count is not None else [])
    for c in columns:
      if self.in_lp[c]:
        continue
      self.in_lp[c] = True
      members = np.flatnonzero(self.tasks[c])
      if not self.space.overlap:
        model.add_var(lb=0.0, obj=float(self.values[c]), column=mip.Column(
            [self.rows[t] for t in members] + count, [1.0] * (len(members) + len(count))))
        continue
      x = model.add_var(lb=0.0, ub=1.0, obj=0.0,
                        column=mip.Column(count, [1.0] * len(count)) if count else None)
      serve = [model.add_var(lb=0.0, obj=float(self.scores[c, t]),
                             column=mip.Column([self.rows[t]], [1.0])) for t in members]
      for a in serve:
        model.add_constr(a - x <= 0.0)
      model.add_constr(x - mip.xsum(serve) <= 0.0)

  def reduced_costs(self, duals: pricing.Duals, lp_only: bool = False) -> np.ndarray:
    """The reduced costs of the master's columns (with `lp_only`, of those in the LP)."""
    if not self.space.overlap:
      if getattr(self, "_dense", None) is None:
        self._dense = self.tasks.astype(np.float64)
      if lp_only:
        return self.values[self.in_lp] - self._dense[self.in_lp] @ duals.task - duals.count
      return self.values - self._dense @ duals.task - duals.count
    keep = self.in_lp if lp_only else slice(None)
    return pricing.scored_reduced_costs(self.tasks[keep], self.scores[keep],
                                        self.values[keep], duals, True)

  def solve(self) -> tuple[pricing.Duals, float]:
    """The LP's duals (the count dual of a max_groups row clipped to >= 0) and value."""
    # relax=True solves the LP from the last basis (6 ms against 170 ms through CBC's
    # branch and bound entry, 12k columns).
    status = self.model.optimize(relax=True)
    if status != mip.OptimizationStatus.OPTIMAL:
      raise RuntimeError(f"the restricted master LP returned {status}")
    pi = np.array([r.pi for r in self.rows], dtype=np.float64)
    mu = 0.0
    if self.count is not None:
      mu = float(self.count.pi)
      if self.sign > 0:
        mu = max(mu, 0.0)
    return pricing.Duals(pi, mu), float(self.model.objective_value)

  def vertices(self, duals: pricing.Duals, rng: np.random.Generator
               ) -> list[pricing.Duals]:
    """Optimal duals at other vertices of the optimal face, the solver's own first.

    Degenerate masters (an integral LP optimum above all) have a face of optimal duals,
    and the vertex the solver returns can be where pricing bounds are weakest: with
    exactly p groups it put the count dual at the top of its range, where every large
    group looks nearly profitable to the branch and bound's per-task bounds. Nudging
    the right-hand side by +-delta along a direction and re-solving returns the
    optimal duals of the face's vertex in that direction (optimal at the unperturbed
    side too unless a breakpoint lies within delta; the bound holds for any duals
    regardless). Directions: the count row, and one random sign per task row.
    """
    directions = [(rng.choice([-1.0, 1.0], size=self.m), 0.0)]
    if self.count is not None:
      directions.append((np.zeros(self.m), 1.0))
    found = [duals]
    for task, count in directions:
      for sign in (1.0, -1.0):
        self._shift(sign * task, sign * count)
        found.append(self.solve()[0])
    self._shift(np.zeros(self.m), 0.0)
    return found

  def _shift(self, task: np.ndarray, count: float, delta: float = 1e-4) -> None:
    for row, d in zip(self.rows, task):
      row.rhs = 1.0 + delta * float(d)
    if self.count is not None:
      self.count.rhs = float(self.limit) + delta * float(count)

  def lagrangian(self, duals: pricing.Duals) -> float:
    """L = sum pi + mu K: the Lagrangian value of the duals (K: the count limit)."""
    return math.fsum(duals.task.tolist()) + duals.count * self.limit


def _size_lp(upper: dict[int, float], limit: int | None, m: int, overlap: bool) -> float:
  """max sum_k n_k r_k s.t. sum n_k <= limit, sum k n_k <= m (partition), n >= 0.

  An LP with two rows has an optimal vertex with at most two sizes, so trying every
  single size and pair is exact.

  Examples:
    >>> _size_lp({2: 1.0, 5: 4.0}, limit=None, m=10, overlap=False)
    8.0
    >>> _size_lp({2: 1.0, 5: 4.0}, limit=1, m=10, overlap=False)
    4.0
    >>> _size_lp({2: -1.0}, limit=3, m=10, overlap=True)
    0.0
  """
  items = [(k, r) for k, r in upper.items() if r > 0]
  if not items:
    return 0.0
  cap = math.inf if limit is None else float(limit)
  if overlap:
    return cap * max(r for _, r in items)
  best = 0.0
  for k, r in items:
    best = max(best, r * min(cap, m / k))
  if cap < math.inf:
    for i, (k1, r1) in enumerate(items):
      for k2, r2 in items[i + 1:]:
        lo, hi = (k1, r1), (k2, r2)
        if k1 > k2:
          lo, hi = hi, lo
        # n_lo + n_hi = cap, k_lo n_lo + k_hi n_hi = m
        if hi[0] == lo[0]:
          continue
        n_hi = (m - lo[0] * cap) / (hi[0] - lo[0])
        n_lo = cap - n_hi
        if n_hi >= 0 and n_lo >= 0:
          best = max(best, n_lo * lo[1] + n_hi * hi[1])
  return best


def _bound(master: _Master, duals: pricing.Duals, upper: dict[int, float],
           limit: int | None, m: int, overlap: bool, lp_only: bool = False) -> float:
  """The Lagrangian bound of the duals: L + the master's positive reduced costs + the
  size LP over `upper`, the bounds on the reduced costs of the groups outside it (with
  `lp_only`, the pool outside the LP is left out: not a bound, a cheaper criterion)."""
  positive = np.maximum(master.reduced_costs(duals, lp_only), 0.0)
  return (master.lagrangian(duals) + math.fsum(positive.tolist())
          + _size_lp(upper, limit, m, overlap))


def _choose_duals(master: _Master, bnb: pricing.BranchAndBound,
                  vertices: list[pricing.Duals], limit: int | None, m: int, overlap: bool,
                  steps: int = 8) -> pricing.Duals:
  """The optimal duals (a mix of `vertices`) whose root-bound Lagrangian bound is least.

  With root bounds as the reduced-cost bounds, the bound is a convex function of the
  duals (a maximum of linear functions), so a golden-section search along the segment
  from the best point so far to each vertex, in turn, improves it; every point is a
  convex combination of optimal duals, hence optimal.
  """
  def value(d):
    return _bound(master, d, bnb.root_bounds(d), limit, m, overlap, lp_only=True)

  def mix(a, x, y):
    return pricing.Duals((1 - a) * x.task + a * y.task, (1 - a) * x.count + a * y.count)

  best = pricing.Duals(np.mean([v.task for v in vertices], axis=0),
                       float(np.mean([v.count for v in vertices])))
  score = value(best)
  for v in vertices:
    lo, hi = 0.0, 1.0
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = value(mix(a, best, v)), value(mix(b, best, v))
    for _ in range(steps):
      if fa <= fb:
        hi, b, fb = b, a, fa
        a = hi - ratio * (hi - lo)
        fa = value(mix(a, best, v))
      else:
        lo, a, fa = a, b, fb
        b = lo + ratio * (hi - lo)
        fb = value(mix(b, best, v))
    for x, fx in ((a, fa), (b, fb), (1.0, None)):
      fx = value(mix(x, best, v)) if fx is None else fx
      if fx < score:
        best, score = mix(x, best, v), fx
        break
  return best


def _feasible_partition(space: pricing.Space, num_groups: int | None,
                        max_groups: int | None, time_limit_s: float | None
                        ) -> tuple[np.ndarray | None, bool]:
  """A partition the constraints allow, found by CBC on an assignment model.

  Blocks go to slots (at most num_groups, max_groups or one per block; slot g is used
  only if slot g - 1 is, and block b only in slots up to b, which breaks the slots'
  symmetry); a used slot holds lo..hi tasks, no clashing pair and a solitary block only
  alone. The objective is zero: this only looks for feasibility.

  Returns:
    ``(rows, infeasible)``: the partition's groups as block rows, or None; `infeasible`
    is True when CBC proved that no partition exists.
  """
  nb = space.num_blocks
  slots = min(nb, num_groups if num_groups is not None else (max_groups or nb))
  model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
  model.verbose = 0
  model.threads = 0
  model.seed = _CBC_SEED
  _fast_settings(model)
  y = [[model.add_var(var_type=mip.BINARY) if g <= b else None for g in range(slots)]
       for b in range(nb)]
  used = [model.add_var(var_type=mip.BINARY) for _ in range(slots)]
  for b in range(nb):
    model += mip.xsum(v for v in y[b] if v is not None) == 1
  for g in range(slots):
    members = [(b, y[b][g]) for b in range(nb) if y[b][g] is not None]
    size = mip.xsum(float(space.size[b]) * v for b, v in members)
    model += size >= space.lo * used[g]
    model += size <= space.hi * used[g]
    for b, v in members:
      if space.solitary[b]:
        others = mip.xsum(w for c, w in members if c != b)
        model += others <= len(members) * (1 - v)
    if g:
      model += used[g] <= used[g - 1]
  for a, b in zip(*np.nonzero(np.triu(space.clash))):
    for g in range(min(a, b, slots - 1) + 1):
      model += y[a][g] + y[b][g] <= 1
  if num_groups is not None:
    model += mip.xsum(used) == num_groups
  elif max_groups is not None:
    model += mip.xsum(used) <= max_groups
  limit = {} if time_limit_s is None else {"max_seconds": float(time_limit_s)}
  status = model.optimize(**limit)
  if status in (mip.OptimizationStatus.INFEASIBLE, mip.OptimizationStatus.INT_INFEASIBLE):
    return None, True
  if status not in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
    return None, False
  rows = np.zeros((slots, nb), dtype=bool)
  for b in range(nb):
    for g, v in enumerate(y[b]):
      if v is not None and v.x >= 0.5:
        rows[g, b] = True
  return rows[rows.any(axis=1)], False


def _block_rows(space: pricing.Space, task_rows: np.ndarray) -> np.ndarray:
  """Task membership rows (unions of blocks) as block rows."""
  return (np.asarray(task_rows, dtype=np.int64) @ space.member.T.astype(np.int64)) > 0


def _selection_problem(space: pricing.Space, rows: np.ndarray, num_groups, max_groups
                       ) -> SelectionProblem:
  tasks = space.tasks_of(rows)
  scores = pricing.task_scores(tasks, space.gains, space.objective)
  sets = tuple(frozenset(np.flatnonzero(t).tolist()) for t in tasks)
  return SelectionProblem(sets, scores, space.overlap, num_groups=num_groups,
                          max_groups=max_groups, candidates="generated")


def solve_by_columns(tasks: Sequence[str], gains: np.ndarray, objective: str,
                     constraints: Constraints, overlap: bool, initial: np.ndarray,
                     time_limit_s: float | None = None, seed: int = 0,
                     enumerate_limit: int | None = None) -> ColumnResult:
  """Column generation from `initial` columns, then CBC over every column found.

  Args:
    tasks, gains, objective, constraints, overlap: as for
      :func:`~tgroup.grouping.solve_grouping` (already checked).
    initial: bool (n, m), the heuristic columns to start from (unions of must_link blocks,
      allowed); every allowed single block is added to them.
    time_limit_s: the wall-clock limit of the whole solve; None: column generation
      stops after :data:`DEFAULT_COLGEN_S` and each CBC solve after
      :data:`DEFAULT_CBC_S`.
    seed: seeds the random directions that centre the duals.
    enumerate_limit: price by enumerating every allowed group when there are at most
      this many, else by branch and bound; None: :data:`ENUMERATE_LIMIT` (and
      :data:`ENUMERATE_COVER_LIMIT` for a cover).

  Returns:
    A :class:`ColumnResult`.

  Examples:
    >>> import numpy as np
    >>> gains = np.array([[1.0, 0.9, -1.0], [0.8, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    >>> singles = np.eye(3, dtype=bool)  # start from singletons only
    >>> r = solve_by_columns("abc", gains, "principled", Constraints(num_groups=2),
    ...                      False, singles)
    >>> sorted(sorted(r.problem.sets[c]) for c in r.found.chosen), r.bound == r.found.objective
    ([[0, 1], [2]], True)
  """
  start = time.monotonic()
  budget = DEFAULT_COLGEN_S if time_limit_s is None else float(time_limit_s)
  pricing_end = start + _PRICING_SHARE * budget
  bound_end = start + _BOUND_SHARE * budget
  end = start + budget
  space = pricing.make_space(tasks, gains, objective, constraints, overlap)
  m, nb = len(tasks), space.num_blocks
  num_groups, max_groups = constraints.num_groups, constraints.max_groups
  scale = 1.0 + float(np.abs(gains).max())
  tol = _IMPROVING * scale
  # Any grouping's objective is at most this in size (a task's score is a mean of its
  # column's entries, or less): the artificials' penalty dominates it.
  reach = float(np.abs(gains).max(axis=0).sum())
  penalty = 1.0 + 2.0 * reach

  singles = np.eye(nb, dtype=bool)
  rows = np.concatenate([_block_rows(space, initial), singles])
  rows = rows[space.allowed(rows)]
  master = _Master(space, num_groups, None if num_groups is not None else max_groups,
                   penalty)
  master.add(rows, to_lp=False)
  if reach == 0:
    # Zero gains (the pipeline's feasibility check): every grouping scores 0, so any
    # feasible one over the heuristic columns is optimal; only feasibility needs pricing.
    problem = _selection_problem(space, master.block_rows, num_groups, max_groups)
    found = problem.solve(time_limit_s)
    if found is not None:
      return ColumnResult(problem, found, 0.0, 0, len(master.keys), 0.0, True, True)
  # The LP starts from the singles and the columns best per task; the pool's others
  # enter when their reduced cost says so.
  per_task = master.values / master.tasks.sum(axis=1)
  first = np.argsort(-per_task, kind="stable")[:_FIRST_PER_BLOCK * nb]
  master.activate(np.concatenate([first, np.flatnonzero(master.block_rows.sum(axis=1) == 1)]))
  if enumerate_limit is None:
    enumerate_limit = ENUMERATE_COVER_LIMIT if overlap else ENUMERATE_LIMIT
  enum = pricing.Enumerated.build(space, enumerate_limit)
  if enum is not None:
    master.on_add = enum.mark
    enum.mark(master.block_rows)
  bnb = None if enum is not None else pricing.BranchAndBound(space)
  per_round = max(20, _PER_BLOCK * nb)

  rng = np.random.default_rng(seed)
  limit = num_groups if num_groups is not None else max_groups
  # The most groups a solution can have (a cover's each serve a distinct task).
  most = limit if limit is not None else (m if overlap else nb)
  # Pricing's last pass keeps every group above `floor`: with them in the pool, a
  # better solution than CBC's over the pool must use a column below it, which the
  # Lagrangian usually rules out without a further search (see "Closing the gap").
  floor = -1e-6 * scale * most
  rounds, converged, proved, priced = 0, False, False, False
  upper: dict[int, float] = {}
  while True:
    duals, lp_value = master.solve()
    if bnb is not None:
      # Enumeration prices exactly whatever the duals; the branch and bound needs
      # duals its bounds can work with.
      duals = _choose_duals(master, bnb, master.vertices(duals, rng), most, m, overlap)
    rounds += 1
    if time.monotonic() > pricing_end:
      break
    pool = master.reduced_costs(duals)
    waiting = np.flatnonzero(~master.in_lp & (pool > tol))
    if len(waiting):
      master.activate(waiting[np.argsort(-pool[waiting], kind="stable")][:per_round])
      _log.debug("round %d: %.2f s, %d pool columns into the LP", rounds,
                 time.monotonic() - start, min(len(waiting), per_round))
      continue
    how = "enumerated"
    if enum is not None:
      got = pricing.price_enumerated(enum, duals, tol, per_round)
      if not len(got.rows):
        got = pricing.price_enumerated(enum, duals, floor, _CLOSE_LIMIT)
    else:
      new, rc = pricing.heuristic_columns(space, duals, master.keys, tol, per_round)
      got, how = pricing.Found(new, rc, {}, False), "heuristic"
      if not len(new):
        # A few groups first: improving ones end the pass (back to the LP); only if all
        # are near-tight does the pass go on to collect them all.
        got = bnb.price(duals, floor, master.keys, pricing_end, limit=per_round,
                        improving=tol)
        if (not (got.reduced > tol).any() and not got.complete
            and len(got.rows) >= per_round and time.monotonic() < pricing_end):
          got = bnb.price(duals, floor, master.keys, pricing_end, limit=_CLOSE_LIMIT,
                          improving=tol)
        how = "branch and bound"
    better = got.reduced > tol
    _log.debug("round %d: %.2f s, LP %.6f, L %.6f, %d columns, %d new (%s), %d improving, "
               "best rc %.3g", rounds, time.monotonic() - start, lp_value,
               master.lagrangian(duals), len(master.keys), len(got.rows), how,
               int(better.sum()), float(got.reduced.max()) if len(got.rows) else 0.0)
    if better.any():
      index = master.add(got.rows[better], to_lp=False)
      master.activate(index[:per_round])
      continue
    # Nothing found improves. The near-tight groups join the pool when they are few (a
    # degenerate LP, e.g. zero gains, can have a million at reduced cost 0); otherwise
    # the bound counts them through `upper`.
    converged = proved = got.complete
    priced = True
    upper = got.upper
    if proved:
      master.add(got.rows, to_lp=False)
    else:
      for rc_k, size in zip(got.reduced, space.tasks_of(got.rows).sum(axis=1)):
        upper[int(size)] = max(upper.get(int(size), -math.inf), float(rc_k))
    break

  if not priced:
    # The last duals need a bound of their own: exact by enumeration, else whatever the
    # branch and bound proves by its deadline (its open nodes' bounds at worst).
    if enum is not None:
      got = pricing.price_enumerated(enum, duals, math.inf, None)
    else:
      got = bnb.price(duals, floor, master.keys, max(bound_end, time.monotonic() + 1.0),
                      limit=per_round)
      proved = got.complete
    master.add(got.rows, to_lp=False)
    upper = got.upper

  lagrangian = master.lagrangian(duals)
  positive = np.sort(np.maximum(master.reduced_costs(duals), 0.0))[::-1]
  bound = _bound(master, duals, upper, most, m, overlap)
  _log.debug("bound %.6f after %.2f s (L %.6f, pool rc+ %.3g, sizes above 0: %s, "
             "converged %s, proved %s)", bound, time.monotonic() - start, lagrangian,
             positive.sum(), {k: round(v, 4) for k, v in upper.items() if v > 0},
             converged, proved)
  def cbc_seconds():
    return DEFAULT_CBC_S if time_limit_s is None else max(1.0, end - time.monotonic())

  def solve_pool():
    problem = _selection_problem(space, master.block_rows, num_groups, max_groups)
    return problem, problem.solve(cbc_seconds())

  problem, found = solve_pool()
  _log.debug("IP %s after %.2f s", None if found is None else found.objective,
             time.monotonic() - start)
  closed = infeasible = False
  if found is None and bound < -reach - 1e-9 * scale:
    # Every grouping scores at least -reach, so nothing satisfies the constraints: the
    # bound proves it without looking at a single further column.
    infeasible = True
  elif found is None:
    # The LP is feasible but no integer selection of the columns is: look for a
    # partition directly (one is also a cover).
    rows, none = _feasible_partition(space, num_groups, max_groups, cbc_seconds())
    if rows is not None:
      master.add(rows, to_lp=False)
      problem, found = solve_pool()
    elif none and not overlap:
      infeasible = True
    elif enum is not None and len(enum.rows) <= _ADD_ALL_LIMIT:
      master.add(enum.rows, to_lp=False)
      problem, found = solve_pool()
      infeasible = found is None
  if found is not None and bound - found.objective > 1e-9 * max(1.0, abs(found.objective)):
    # Close the integrality gap: every column of a better solution has rc above theta.
    outside = max(0.0, max(upper.values(), default=0.0))
    top = sorted(positive[:most - 1].tolist() + [outside] * (most - 1),
                 reverse=True)[:most - 1]
    theta = (found.objective - lagrangian - math.fsum(top)
             - 1e-9 * scale * max(1, m))
    extra = None
    if proved and theta >= floor:
      extra = np.zeros((0, nb), dtype=bool)  # every group above theta is in the pool
    elif enum is not None:
      got = pricing.price_enumerated(enum, duals, theta, _CLOSE_LIMIT)
      extra = got.rows if got.complete else None
    elif time.monotonic() < end:
      got = bnb.price(duals, theta, master.keys, end, limit=_CLOSE_LIMIT)
      extra = got.rows if got.complete else None
    if extra is not None:
      before = len(master.keys)
      master.add(extra, to_lp=False)
      if len(master.keys) > before:
        problem, found = solve_pool()
      closed = found.status == "optimal"
      if closed:
        bound = found.objective
  if found is not None:
    bound = max(bound, found.objective)
  return ColumnResult(problem, found, None if found is None else bound, rounds,
                      len(master.keys), lagrangian, converged, closed, infeasible)


