"""Pricing for column generation: the groups with the highest reduced cost against LP duals.

Groups are sets of must_link blocks (:func:`~tgroup.grouping.constraints.link_blocks`), so
must_link never needs checking; cannot_link pairs become clashing blocks, ``alone`` tasks
solitary blocks (only ever a singleton), and the size limits (with TAG's floor of 2) a
range of task counts.

With duals ``pi`` (one per task row) and ``mu`` (the group-count row, 0 without one), a
group S of K tasks has the reduced cost

- partition: ``sum_{t in S} (score_t(S) - pi_t) - mu``;
- cover: ``sum_{t in S} max(0, w_t) + min(0, max_{t in S} w_t) - mu`` with
  ``w_t = score_t(S) - pi_t``: the best a chosen group can add to the Lagrangian when it
  serves any non-empty subset of its tasks (see :mod:`tgroup.grouping.colgen`).

``score_t(S)`` is what task t receives from S divided by K (principled, marginal) or K - 1
(tag, hoa), so for a fixed K the partition's reduced cost is a quadratic in the block
indicators. Three ways to price:

- :class:`Enumerated`: every allowed group, when there are few (exact);
- :func:`heuristic_columns`: greedy growth from every block, then swap/add/drop local
  search (fast, finds improving groups, proves nothing);
- :class:`BranchAndBound`: per size K, a depth-first search whose node bound lets each
  task take its best possible partners (a fractional knapsack over the remaining blocks)
  and then takes the best blocks (another), with each pair's gain split between its two
  tasks as a subgradient descent at the root found best (partitions); exact when it
  finishes, and a valid upper bound (the best open node) when a deadline stops it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tgroup.grouping.candidates import _block_subsets  # the one subset enumerator
from tgroup.grouping.candidates import block_conflicts
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.constraints import link_blocks
from tgroup.grouping.scores import min_group_size
from tgroup.grouping.scores import task_scores


class Duals(NamedTuple):
  """LP duals: one per task row, and the group-count row's (0 without one)."""
  task: np.ndarray
  count: float


@dataclasses.dataclass(frozen=True, eq=False)
class Space:
  """The groups the constraints allow, in must_link blocks, and the gains pricing needs.

  Attributes:
    objective: the grouping objective.
    overlap: False for a partition, True for a cover.
    gains: (m, m) as given (``gains[i, j]``: what j receives from i).
    member: bool (nb, m), the tasks of each block.
    size: int (nb,), tasks per block.
    clash: bool (nb, nb), blocks that cannot_link keeps apart.
    solitary: bool (nb,), blocks of an ``alone`` task (only ever a singleton group).
    lo, hi: the task counts a group may have.
    received: (nb, m), what task t receives from the tasks of block c (partition: from
      the symmetrised gains, which give the same group scores; cover: from the gains).
    pair: (nb, nb), the symmetrised gains summed between blocks (partition).
    task_block: (m,), the block of each task.
  """
  objective: str
  overlap: bool
  gains: np.ndarray
  member: np.ndarray
  size: np.ndarray
  clash: np.ndarray
  solitary: np.ndarray
  lo: int
  hi: int
  received: np.ndarray
  pair: np.ndarray
  task_block: np.ndarray

  @property
  def num_blocks(self) -> int:
    return len(self.size)

  def divisor(self, k):
    """What a task's received gains are divided by in a group of k tasks."""
    k = np.asarray(k, dtype=np.float64)
    return k - 1.0 if self.objective in ("tag", "hoa") else k

  def tasks_of(self, rows: np.ndarray) -> np.ndarray:
    """bool (n, m) task membership of block rows (n, nb)."""
    return np.asarray(rows, dtype=bool).reshape(-1, self.num_blocks)[:, self.task_block]

  def allowed(self, rows: np.ndarray) -> np.ndarray:
    """Which block rows (n, nb) are allowed groups.

    Examples:
      >>> s = make_space("abc", np.zeros((3, 3)), "marginal",
      ...                Constraints(cannot_link=[("a", "b")], alone=["c"]), False)
      >>> s.allowed(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], bool)).tolist()
      [False, True, False, True]
    """
    rows = np.asarray(rows, dtype=bool).reshape(-1, self.num_blocks)
    k = rows.astype(np.int64) @ self.size
    ok = (k >= self.lo) & (k <= self.hi) & rows.any(axis=1)
    for a, b in zip(*np.nonzero(np.triu(self.clash))):
      ok &= ~(rows[:, a] & rows[:, b])
    ok &= ~(rows[:, self.solitary].any(axis=1) & (rows.sum(axis=1) > 1))
    return ok


def make_space(tasks: Sequence[str], gains: np.ndarray, objective: str,
               constraints: Constraints, overlap: bool) -> Space:
  """The :class:`Space` of a grouping problem (inputs already checked)."""
  m = len(tasks)
  blocks = link_blocks(tasks, constraints)
  nb = len(blocks)
  member = np.zeros((nb, m), dtype=bool)
  task_block = np.empty(m, dtype=np.int64)
  for b, block in enumerate(blocks):
    member[b, list(block)] = True
    task_block[list(block)] = b
  clash, solitary = block_conflicts(task_block, nb, tasks, constraints)
  g = np.array(gains, dtype=np.float64)
  w = g.copy()
  if objective != "principled":
    np.fill_diagonal(w, 0.0)
  # x' W x = x' ((W + W')/2) x: the partition prices with the symmetric form, whose
  # per-row bounds are tighter; a cover's per-task scores need the gains as they are.
  sym = (w + w.T) / 2.0
  bm = member.astype(np.float64)
  received = bm @ (w if overlap else sym)
  lo = max(constraints.min_group_size, min_group_size(objective))
  hi = m if constraints.max_group_size is None else min(m, constraints.max_group_size)
  return Space(objective=objective, overlap=bool(overlap), gains=g, member=member,
               size=member.sum(axis=1).astype(np.int64), clash=clash, solitary=solitary,
               lo=lo, hi=hi, received=received, pair=bm @ sym @ bm.T, task_block=task_block)


def row_keys(rows: np.ndarray) -> list[bytes]:
  """A hashable key per block row, to tell groups apart."""
  return [r.tobytes() for r in np.packbits(np.asarray(rows, dtype=bool), axis=1)]


def reduced_costs(space: Space, rows: np.ndarray, duals: Duals) -> np.ndarray:
  """Exact reduced costs of block rows (n, nb), from the one definition of scores.

  Examples:
    >>> s = make_space("ab", np.array([[0.0, 1.0], [3.0, 0.0]]), "marginal",
    ...                Constraints(), False)
    >>> reduced_costs(s, np.array([[True, True]]), Duals(np.array([1.0, 0.0]), 0.5))
    array([0.5])
  """
  rows = np.asarray(rows, dtype=bool).reshape(-1, space.num_blocks)
  if not len(rows):
    return np.zeros(0)
  tm = space.tasks_of(rows)
  s = task_scores(tm, space.gains, space.objective)
  w = np.where(tm, s - duals.task[None, :], np.nan)
  if not space.overlap:
    return np.nansum(w, axis=1) - duals.count
  top = np.max(np.where(tm, w, -np.inf), axis=1)
  return np.nansum(np.maximum(w, 0.0), axis=1) + np.minimum(0.0, top) - duals.count


def _subset_count(nb: int, size: np.ndarray, lo: int, hi: int) -> int:
  """An upper bound on the block subsets with lo..hi tasks (by block counts)."""
  largest, smallest = int(size.max()), int(size.min())
  first = max(1, -(-lo // largest))
  last = min(nb, hi // smallest)
  return sum(math.comb(nb, s) for s in range(first, last + 1))


class Enumerated:
  """Every allowed group, scored once; pricing is then a matrix-vector product.

  Attributes:
    rows: bool (n, nb), every allowed group.
    tasks: bool (n, m), their task membership.
    values: (n,) their scores (sums of their tasks' scores).
    scores: (n, m) per-task scores (NaN outside the group); covers only (a partition's
      reduced costs need only the values, and a million groups' scores would take
      160 MB).
    sizes: (n,) their task counts.
    excluded: (n,) which are already columns (see :meth:`mark`).
  """

  _CHUNK = 2**16

  def __init__(self, space: Space, rows: np.ndarray):
    self.space = space
    self.rows = rows
    self.tasks = space.tasks_of(rows)
    values, scores = [], []
    for lo in range(0, len(rows), self._CHUNK):
      s = task_scores(self.tasks[lo:lo + self._CHUNK], space.gains, space.objective)
      values.append(np.nansum(s, axis=1))
      if space.overlap:
        scores.append(s)
    m = len(space.task_block)
    self.values = np.concatenate(values) if values else np.zeros(0)
    self.scores = np.concatenate(scores) if scores else np.zeros((0, m))
    self.sizes = self.tasks.sum(axis=1)
    self.excluded = np.zeros(len(rows), dtype=bool)
    self._codes = _codes(rows)
    self._sorted = np.argsort(self._codes, kind="stable")

  @classmethod
  def build(cls, space: Space, limit: int) -> Enumerated | None:
    """All allowed groups when at most `limit` block subsets have an allowed size."""
    nb = space.num_blocks
    if _subset_count(nb, space.size, space.lo, space.hi) > limit:
      return None
    first = max(1, -(-space.lo // int(space.size.max())))
    last = min(nb, space.hi // int(space.size.min()))
    rows = _block_subsets(nb, first, last) if first <= last else np.zeros((0, nb), bool)
    return cls(space, rows[space.allowed(rows)])

  def mark(self, rows: np.ndarray) -> None:
    """Marks these block rows (when allowed groups) as columns already."""
    codes = _codes(np.asarray(rows, dtype=bool).reshape(-1, self.space.num_blocks))
    if not len(codes) or not len(self._codes):
      return
    where = np.searchsorted(self._codes, codes, sorter=self._sorted)
    where = np.minimum(where, len(self._codes) - 1)
    hit = self._codes[self._sorted[where]] == codes
    self.excluded[self._sorted[where[hit]]] = True

  def reduced_costs(self, duals: Duals) -> np.ndarray:
    if not self.space.overlap:
      return self.values - self.tasks @ duals.task - duals.count
    return scored_reduced_costs(self.tasks, self.scores, self.values, duals, True)


def _codes(rows: np.ndarray) -> np.ndarray:
  """One sortable code per block row: the bitmask as an integer (up to 62 blocks), else
  the packed bytes."""
  nb = rows.shape[1]
  if nb <= 62:
    return rows.astype(np.int64) @ (np.int64(1) << np.arange(nb, dtype=np.int64))
  packed = np.ascontiguousarray(np.packbits(rows, axis=1))
  return packed.view(f"V{packed.shape[1]}").ravel()


def scored_reduced_costs(tasks: np.ndarray, scores: np.ndarray, values: np.ndarray,
                         duals: Duals, overlap: bool) -> np.ndarray:
  """Reduced costs of groups already scored: membership (n, m), per-task scores (NaN
  outside) and their sums."""
  if not overlap:
    return values - tasks @ duals.task - duals.count
  w = np.where(tasks, scores - duals.task[None, :], np.nan)
  top = np.max(np.where(tasks, w, -np.inf), axis=1)
  return np.nansum(np.maximum(w, 0.0), axis=1) + np.minimum(0.0, top) - duals.count


class Found(NamedTuple):
  """What a pricing pass found.

  Attributes:
    rows: bool (n, nb), new groups with a reduced cost above the threshold, best first.
    reduced: their reduced costs.
    upper: {task count K: an upper bound on the reduced cost of any group of K tasks
      neither excluded nor returned}; at most the threshold at sizes searched to the
      end.
    complete: whether every size was searched to the end.
  """
  rows: np.ndarray
  reduced: np.ndarray
  upper: dict[int, float]
  complete: bool


def price_enumerated(enum: Enumerated, duals: Duals, threshold: float,
                     limit: int | None) -> Found:
  """Exact pricing over every allowed group (those marked as columns aside).

  Returns up to `limit` groups (None: all) with reduced cost above `threshold`, best first,
  and per task count the exact maximum over the groups neither marked nor returned;
  complete when no group above the threshold was left out.
  """
  rc = enum.reduced_costs(duals)
  keep = ~enum.excluded
  good = np.flatnonzero(keep & (rc > threshold))
  complete = limit is None or len(good) <= limit
  good = good[np.argsort(-rc[good], kind="stable")][:limit]
  rest = keep.copy()
  rest[good] = False
  upper = {}
  for k in np.unique(enum.sizes):
    here = rest & (enum.sizes == k)
    upper[int(k)] = float(rc[here].max()) if here.any() else -math.inf
  return Found(enum.rows[good], rc[good], upper, complete)


# --------------------------------------------------------------------------- heuristics


def _partition_moves(space: Space, duals: Duals, q, k, pi_sum):
  """Reduced costs of groups with q = x'Px, k tasks and dual sum pi_sum (broadcast)."""
  d = space.divisor(k)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(k >= max(space.lo, 2), q / d - pi_sum - duals.count, -np.inf)


def _cover_moves(space: Space, duals: Duals, got, tasks, k):
  """Cover reduced costs of groups whose tasks receive `got` (..., m), members `tasks`."""
  d = space.divisor(k)[..., None]
  with np.errstate(divide="ignore", invalid="ignore"):
    w = got / d - duals.task
  pos = np.where(tasks, np.maximum(w, 0.0), 0.0).sum(axis=-1)
  top = np.max(np.where(tasks, w, -np.inf), axis=-1)
  value = pos + np.minimum(0.0, top) - duals.count
  return np.where(k >= max(space.lo, 2), value, -np.inf)


def _grow(space: Space, duals: Duals, seeds: np.ndarray) -> np.ndarray:
  """Greedy growth from each seed row: add the block giving the best reduced cost, until
  nothing fits; returns every group on the way (bool rows)."""
  nb, size = space.num_blocks, space.size
  y = seeds.astype(np.float64)
  blocked = seeds | space.solitary[None, :] | ((y @ space.clash) > 0)
  k = y @ size
  pb = space.member.astype(np.float64) @ duals.task
  out = []
  if not space.overlap:
    p = space.pair
    u = y @ p
    q = (u * y).sum(axis=1)
    pi_sum = y @ pb
  else:
    got = y @ space.received
    tasks = space.tasks_of(seeds)
  rows = np.arange(len(y))
  while True:
    k2 = k[:, None] + size[None, :]
    if not space.overlap:
      rc = _partition_moves(space, duals, q[:, None] + 2 * u + np.diag(p)[None, :], k2,
                            pi_sum[:, None] + pb[None, :])
    else:
      rc = _cover_moves(space, duals, got[:, None, :] + space.received[None, :, :],
                        tasks[:, None, :] | space.member[None, :, :], k2)
    rc = np.where(blocked | (k2 > space.hi), -np.inf, rc)
    j = np.argmax(rc, axis=1)
    alive = np.isfinite(rc[rows, j])
    if not alive.any():
      break
    i, j = rows[alive], j[alive]
    y[i, j] = 1.0
    k[i] += size[j]
    blocked[i] |= space.clash[j]
    blocked[i, j] = True
    if not space.overlap:
      q[i] += 2 * u[i, j] + p[j, j]
      u[i] += p[j]
      pi_sum[i] += pb[j]
    else:
      got[i] += space.received[j]
      tasks[i] |= space.member[j]
    out.append(y[i] > 0)
  return np.concatenate(out) if out else np.zeros((0, nb), bool)


def _improve(space: Space, duals: Duals, row: np.ndarray, max_steps: int = 50) -> np.ndarray:
  """Best-improvement local search (add, drop, swap one block) from one group."""
  row = row.copy()
  size, nb = space.size, space.num_blocks
  pb = space.member.astype(np.float64) @ duals.task
  for _ in range(max_steps):
    inside, outside = np.flatnonzero(row), np.flatnonzero(~row & ~space.solitary)
    k = int(size[inside].sum())
    clash_in = space.clash[:, inside].sum(axis=1)  # clashes of each block with the group
    # Candidate moves as (out, in) pairs; -1 means none.
    outs = np.concatenate([np.full(len(outside), -1), inside,
                           np.repeat(inside, len(outside))])
    ins = np.concatenate([outside, np.full(len(inside), -1), np.tile(outside, len(inside))])
    k2 = k - np.where(outs >= 0, size[outs], 0) + np.where(ins >= 0, size[ins], 0)
    ok = (k2 <= space.hi) & (k2 >= max(space.lo, 2))
    ok &= np.where(ins >= 0, clash_in[ins] - np.where(
        outs >= 0, space.clash[np.maximum(ins, 0), np.maximum(outs, 0)], 0) == 0, True)
    if not space.overlap:
      p = space.pair
      u = p[:, inside].sum(axis=1)
      q = float(u[inside].sum())
      o, n = np.maximum(outs, 0), np.maximum(ins, 0)
      q2 = (q - np.where(outs >= 0, 2 * u[o] - p[o, o], 0.0)
            + np.where(ins >= 0, 2 * u[n] + p[n, n], 0.0)
            - np.where((outs >= 0) & (ins >= 0), 2 * p[o, n], 0.0))
      pi2 = pb[inside].sum() - np.where(outs >= 0, pb[o], 0.0) + np.where(ins >= 0, pb[n], 0.0)
      rc = _partition_moves(space, duals, q2, k2, pi2)
      here = float(_partition_moves(space, duals, q, np.array(k), pb[inside].sum()))
    else:
      a, mem = space.received, space.member
      got = a[inside].sum(axis=0)
      tasks = mem[inside].any(axis=0)
      o, n = np.maximum(outs, 0), np.maximum(ins, 0)
      got2 = (got[None, :] - np.where(outs[:, None] >= 0, a[o], 0.0)
              + np.where(ins[:, None] >= 0, a[n], 0.0))
      tasks2 = (tasks[None, :] & ~np.where(outs[:, None] >= 0, mem[o], False)) | np.where(
          ins[:, None] >= 0, mem[n], False)
      rc = _cover_moves(space, duals, got2, tasks2, k2)
      here = float(_cover_moves(space, duals, got, tasks, np.array(k)))
    rc = np.where(ok, rc, -np.inf)
    best = int(np.argmax(rc)) if len(rc) else -1
    if best < 0 or not rc[best] > here + 1e-12:
      break
    if outs[best] >= 0:
      row[outs[best]] = False
    if ins[best] >= 0:
      row[ins[best]] = True
  return row


def heuristic_columns(space: Space, duals: Duals, exclude: set[bytes], threshold: float,
                      limit: int, polish: int = 20) -> tuple[np.ndarray, np.ndarray]:
  """Improving groups found by greedy growth from every block and local search.

  Returns up to `limit` new allowed groups (not in `exclude`) with reduced cost above
  `threshold`, best first, and their exact reduced costs. Proves nothing about groups
  it did not find.
  """
  nb = space.num_blocks
  free = np.flatnonzero(~space.solitary & (space.size <= space.hi))
  if not len(free):
    return np.zeros((0, nb), bool), np.zeros(0)
  seeds = np.zeros((len(free), nb), dtype=bool)
  seeds[np.arange(len(free)), free] = True
  rows = np.concatenate([seeds, _grow(space, duals, seeds)])
  rows = np.unique(rows[space.allowed(rows)], axis=0)
  if not len(rows):
    return rows, np.zeros(0)
  rc = reduced_costs(space, rows, duals)
  order = np.argsort(-rc, kind="stable")
  better = [_improve(space, duals, rows[i]) for i in order[:polish]]
  if better:
    rows = np.unique(np.concatenate([rows, np.array(better)]), axis=0)
    rows = rows[space.allowed(rows)]
    rc = reduced_costs(space, rows, duals)
  new = np.array([k not in exclude for k in row_keys(rows)], dtype=bool)
  good = np.flatnonzero(new & (rc > threshold))
  good = good[np.argsort(-rc[good], kind="stable")][:limit]
  return rows[good], rc[good]


# ---------------------------------------------------------------------- branch and bound


def _knapsack(values, weights, capacity):
  """max sum(v x) s.t. sum(w x) == capacity, 0 <= x <= 1 (rows of values; -inf where the
  capacity cannot be reached). The LP optimum: take by value per weight, best first."""
  density = values / weights
  order = np.argsort(-density, axis=-1, kind="stable")
  d = np.take_along_axis(density, order, axis=-1)
  w = np.take_along_axis(np.broadcast_to(weights, values.shape), order, axis=-1)
  cum = np.cumsum(w, axis=-1)
  cap = np.asarray(capacity, dtype=np.float64)[..., None]
  take = np.clip(cap - (cum - w), 0.0, w)
  with np.errstate(invalid="ignore"):  # -inf (excluded) times 0 (not taken)
    total = np.where(take > 0, take * d, 0.0).sum(axis=-1)
  reach = (cum[..., -1] if w.shape[-1] else np.zeros(values.shape[:-1])) >= cap[..., 0]
  return np.where(reach | (cap[..., 0] <= 0), total, -np.inf)


def _fill(values: np.ndarray, weights: np.ndarray, unit: bool, capacity: float) -> float:
  """:func:`_knapsack` for one row, fast: the best `capacity` values when every weight
  is 1."""
  n = len(values)
  if capacity <= 0:
    return 0.0
  if unit:
    c = int(capacity)
    if c > n:
      return -math.inf
    return float(values.sum()) if c == n else float(-np.partition(-values, c - 1)[:c].sum())
  if weights.sum() < capacity:
    return -math.inf
  density = values / weights
  order = np.argsort(-density, kind="stable")
  w = weights[order]
  take = np.clip(capacity - (np.cumsum(w) - w), 0.0, w)
  return float(take @ density[order])


class _Tables:
  """What node bounds read, from one ``received`` matrix: for each task its blocks by gain
  per task, best first (own block last, marked), with their weights."""

  def __init__(self, space: Space, received: np.ndarray):
    m = len(space.task_block)
    s = space.size.astype(np.float64)
    dens = received.T / s[None, :]  # (m, nb): gain per task of each block
    dens[np.arange(m), space.task_block] = -np.inf
    self.received = received
    self.order = np.argsort(-dens, axis=1, kind="stable")
    self.dens = np.take_along_axis(dens, self.order, axis=1)
    self.weight = s[self.order]
    self.not_own = self.order != space.task_block[:, None]
    self.own = received[space.task_block, np.arange(m)]


class BranchAndBound:
  """Exact pricing per group size by depth-first branch and bound over blocks.

  A node fixes blocks F in the group and keeps R as the blocks that may still join
  (compatible with F, small enough); `need` tasks are still missing. Its bound:

  - each task t of a block in F or R receives at most what F gives it, plus its own
    block's share if that is not in F yet, plus the best `need_t` tasks' worth from R
    (a fractional knapsack by gain per task, own block excluded); dividing by the
    size's divisor and subtracting ``pi_t`` bounds ``w_t``;
  - a block's value is the sum of its tasks' bounds (cover: of their positive parts);
    the group's bound is F's values plus a fractional knapsack of R's values filling
    `need` tasks, minus the count dual (cover: plus ``min(0, max w_t)``).

  Both knapsacks relax a choice that must fill an exact number of tasks, so the bound
  holds for every group below the node; at a leaf (need = 0) it is the reduced cost.

  A partition's group value is the quadratic ``x' S x / d`` with S the symmetrised
  gains, and ``x' M x`` equals it for every M with ``M + M' = 2 S``: how each pair's
  weight is split between the two tasks' bounds is free. The even split lets every
  task count its luckiest partners while they count others; per size, a subgradient
  descent on the antisymmetric part of M (:meth:`split`) makes the root bound far
  tighter (on a noisy planted 40-task instance, from 10.3 to 0.7 at 13 tasks), and the
  search uses the best M found. A cover's per-task scores fix M to the gains.
  """

  def __init__(self, space: Space, split_steps: int = 300):
    self.space = space
    self.base = _Tables(space, space.received)
    self.split_steps = split_steps
    w = np.array(space.gains, dtype=np.float64)
    if space.objective != "principled":
      np.fill_diagonal(w, 0.0)
    self.sym = (w + w.T) / 2.0
    self._root = None
    self.sizes_f = space.size.astype(np.float64)
    self.unit = bool((space.size == 1).all())

  def bound(self, duals, k, fixed, free, got, need, tables=None, fractions=False):
    """(group bound, block values, block feasible) at a node; with `fractions`, also the
    partner fractions (tasks of F and R, nb) and the block fractions (nb) that attain it,
    and those tasks."""
    sp = self.space
    tab = self.base if tables is None else tables
    tasks = np.flatnonzero(sp.member[fixed | free].any(axis=0))
    tb = sp.task_block[tasks]
    in_f = fixed[tb]
    cap = need - np.where(in_f, 0, sp.size[tb])
    avail = free[tab.order[tasks]] & tab.not_own[tasks]
    w = np.where(avail, tab.weight[tasks], 0.0)
    cum = np.cumsum(w, axis=1)
    take = np.clip(cap[:, None] - (cum - w), 0.0, w)
    extra = (take * np.where(avail, tab.dens[tasks], 0.0)).sum(axis=1)
    ok = (cum[:, -1] >= cap) | (cap <= 0)
    ub = (got[tasks] + np.where(in_f, 0.0, tab.own[tasks]) + extra) / sp.divisor(k)
    ub = ub - duals.task[tasks]
    nb = sp.num_blocks
    feasible = np.bincount(tb, weights=~ok, minlength=nb) == 0
    part = np.maximum(ub, 0.0) if sp.overlap else np.where(ok, ub, 0.0)
    value = np.bincount(tb, weights=part, minlength=nb)
    if not feasible[fixed].all():
      return (-np.inf, value, feasible) + ((None, None, tasks) if fractions else ())
    cand = free & feasible
    rest = _fill(value[cand], self.sizes_f[cand], self.unit, need) if need else 0.0
    total = value[fixed].sum() + rest - duals.count
    if sp.overlap:
      alive = ok & (fixed[tb] | cand[tb])
      top = ub[alive].max() if alive.any() else -np.inf
      total += min(0.0, top)
    if not fractions:
      return float(total), value, feasible
    partner = np.zeros((len(tasks), nb))
    np.put_along_axis(partner, tab.order[tasks], np.where(w > 0, take / np.maximum(w, 1e-300),
                                                          0.0), axis=1)
    chosen = fixed.astype(np.float64)
    if need:
      idx = np.flatnonzero(cand)
      vals, sizes = value[idx], sp.size[idx].astype(np.float64)
      order = np.argsort(-(vals / sizes), kind="stable")
      cum_s = np.cumsum(sizes[order])
      amount = np.clip(need - (cum_s - sizes[order]), 0.0, sizes[order]) / sizes[order]
      chosen[idx[order]] = amount
    return float(total), value, feasible, partner, chosen, tasks

  def split(self, duals: Duals, k: int, threshold: float,
            deadline: float | None) -> tuple[_Tables, float]:
    """Tables for size k from the pair split with the least root bound found by a
    subgradient descent (stopping once the bound is at most `threshold`), and that
    bound. A cover keeps its one decomposition."""
    sp = self.space
    nb, m = sp.num_blocks, len(sp.task_block)
    start = ~sp.solitary & (sp.size <= k)
    args = (k, np.zeros(nb, bool), start, np.zeros(m), k)
    if sp.size[start].sum() < k:
      return self.base, -np.inf
    best, tables = self.bound(duals, *args)[0], self.base
    if sp.overlap or best <= threshold:
      return tables, best
    member = sp.member.astype(np.float64)
    singletons = bool((sp.size == 1).all())
    lam = np.zeros((m, m))
    same = sp.task_block[:, None] == sp.task_block[None, :]
    for step in range(self.split_steps):
      if deadline is not None and time.monotonic() > deadline:
        break
      mat = self.sym + lam
      tab = _Tables(sp, mat if singletons else member @ mat)
      value, _, _, partner, chosen, tasks = self.bound(duals, *args, tables=tab,
                                                       fractions=True)
      if value < best:
        best, tables = value, tab
        if best <= threshold:
          break
      if partner is None:
        break
      # d bound / d M[i, t] = chosen[block t] * partner[t, block i] / divisor.
      grad = np.zeros((m, m))
      grad[:, tasks] = (partner[:, sp.task_block] * chosen[sp.task_block[tasks]][:, None]).T
      grad = np.where(same, 0.0, grad - grad.T)
      norm = float(np.sqrt((grad ** 2).sum()))
      if norm == 0:
        break
      lam -= 2.0 / math.sqrt(1.0 + step) / norm * grad
    return tables, best

  def search(self, duals: Duals, k: int, threshold: float, exclude: set[bytes],
             deadline: float | None, collect: bool = False, limit: int | None = None,
             tables: _Tables | None = None, also: set[bytes] = frozenset()):
    """Groups of k tasks with reduced cost above `threshold` (those in `exclude` or `also`
    aside).

    Maximising (collect=False) raises the threshold to each group found, so it returns
    the best; collecting keeps the threshold and returns every group above it (up to
    `limit`, after which it stops incomplete).

    Returns:
      ``(rows, reduced, upper, complete)``: the groups found and their reduced costs;
      `upper` bounds every group of k tasks outside `exclude` (the best found or the
      threshold when complete, else also the best open node's bound).
    """
    sp = self.space
    tab = self.base if tables is None else tables
    nb, m = sp.num_blocks, len(sp.task_block)
    start = ~sp.solitary & (sp.size <= k) if k >= 2 else (sp.size <= k)
    stack = [(np.zeros(nb, bool), start, np.zeros(m), k, np.inf)]
    found, values = [], []
    theta = threshold
    complete = True
    open_bound = -np.inf
    while stack:
      if deadline is not None and time.monotonic() > deadline:
        open_bound = max(b for *_, b in stack)
        complete = False
        break
      fixed, free, got, need, parent = stack.pop()
      if parent <= theta:
        continue
      if need == 0:
        # Allowed by construction: k tasks, no clashes, no solitary block (k >= 2).
        row = fixed[None, :]
        key = row_keys(row)[0]
        if key not in exclude and key not in also:
          rc = float(reduced_costs(sp, row, duals)[0])
          if rc > theta:
            found.append(fixed)
            values.append(rc)
            if not collect:
              theta = rc
            elif limit is not None and len(found) >= limit:
              open_bound = max([b for *_, b in stack] + [-np.inf])
              complete = False
              break
        continue
      if sp.size[free].sum() < need:
        continue
      bound, value, feasible = self.bound(duals, k, fixed, free, got, need, tab)
      if not bound > theta:
        continue
      cand = np.flatnonzero(free & feasible)
      if not len(cand):
        continue
      b = int(cand[np.argmax(value[cand] / sp.size[cand])])
      left = free & feasible
      left[b] = False
      stack.append((fixed, left, got, need, bound))
      joined = fixed.copy()
      joined[b] = True
      rest = need - int(sp.size[b])
      stack.append((joined, left & ~sp.clash[b] & (sp.size <= rest), got + tab.received[b],
                    rest, bound))
    upper = max(theta if not collect else threshold, open_bound)
    if found and not collect:
      upper = max(upper, max(values))
    rows = np.array(found, dtype=bool).reshape(-1, nb)
    return rows, np.array(values), float(upper), complete

  def sizes(self) -> list[int]:
    """The task counts of allowed groups with at least 2 tasks (singletons are priced
    by enumeration)."""
    sp = self.space
    total = int(sp.size[~sp.solitary].sum())
    return list(range(max(sp.lo, 2), min(sp.hi, total) + 1))

  def _root_tables(self):
    """What root bounds need that the duals do not change: the sizes, each task's best
    partners' worth at each size, whether they can be reached, and which blocks can
    join a group of each size."""
    sp = self.space
    sizes = np.array(self.sizes(), dtype=np.int64)
    nb, m = sp.num_blocks, len(sp.task_block)
    ok_block = ~sp.solitary
    tab = self.base
    w = np.where(tab.not_own & ok_block[tab.order], tab.weight, 0.0)  # (m, nb)
    value = np.cumsum(w * np.where(w > 0, tab.dens, 0.0), axis=1)
    cum = np.cumsum(w, axis=1)
    own_size = sp.size[sp.task_block].astype(np.float64)
    extra = np.empty((m, len(sizes)))
    for t in range(m):
      # The fractional knapsack's value is piecewise linear in the capacity, through
      # the cumulative (weight, value) points of the items taken best first.
      extra[t] = np.interp(sizes - own_size[t], np.concatenate([[0.0], cum[t]]),
                           np.concatenate([[0.0], value[t]]))
    reach = cum[:, -1][:, None] >= (sizes[None, :] - own_size[:, None])
    member = sp.member.astype(np.float64)
    usable = (member @ (~reach).astype(np.float64) == 0) & ok_block[:, None]
    usable &= sp.size[:, None] <= sizes[None, :]
    return sizes, extra, reach, usable

  def root_bounds(self, duals: Duals) -> dict[int, float]:
    """The root node's bound at every size of :meth:`sizes`, at once.

    Every block may be a partner here whatever its size (a relaxation of the root's
    own bound, so still an upper bound on every group of that size). A valid
    reduced-cost bound with no search at all: what :mod:`tgroup.grouping.colgen` chooses
    duals by.
    """
    sp = self.space
    if self._root is None:
      self._root = self._root_tables()
    sizes, extra, reach, usable = self._root
    if not len(sizes):
      return {}
    tab = self.base
    ub = (tab.own[:, None] + extra) / sp.divisor(sizes)[None, :] - duals.task[:, None]
    part = np.maximum(ub, 0.0) if sp.overlap else ub
    member = sp.member.astype(np.float64)
    value = member @ np.where(reach, part, 0.0)  # (nb, sizes)
    with np.errstate(invalid="ignore"):
      total = _knapsack(np.where(usable, value, -np.inf).T, sp.size.astype(np.float64),
                        sizes.astype(np.float64))
    total = np.where(np.isnan(total), -np.inf, total) - duals.count
    if sp.overlap:
      alive = member.T @ usable.astype(np.float64) > 0  # (m, sizes)
      top = np.max(np.where(alive & reach, ub, -np.inf), axis=0)
      total = total + np.minimum(0.0, top)
    return {int(k): float(b) for k, b in zip(sizes, total)}

  def price(self, duals: Duals, threshold: float, exclude: set[bytes],
            deadline: float | None, limit: int | None = None,
            improving: float | None = None) -> Found:
    """Every group above `threshold` (those in `exclude` aside), all sizes.

    Every size first gets its split bound (:meth:`split`); then the size with the highest
    proven bound is searched with a threshold halfway down to `threshold` (or at it, once
    close), and so on: a finished search proves its threshold for that size, so the most
    any size can add falls steadily, and a deadline leaves a useful bound rather than one
    size proven and the rest at their root bounds. Groups found on the way are kept and
    excluded from later searches.

    Stops early (incomplete) at the deadline, after `limit` groups, or once a group above
    `improving` is found (None: never).
    """
    sp = self.space
    nb = sp.num_blocks
    scale = 1.0 + float(np.abs(sp.gains).max())
    roots = self.root_bounds(duals)
    upper = {k: max(threshold, b) for k, b in roots.items()}
    tables = {}
    rows, rcs, keys = [], [], set()
    complete = True

    def stop():
      return ((deadline is not None and time.monotonic() > deadline)
              or (limit is not None and len(rows) >= limit)
              or (improving is not None and rcs and max(rcs) > improving))

    for k in sorted(upper, key=lambda k: -upper[k]):
      if upper[k] <= threshold:
        continue
      if stop():
        return self._found(rows, rcs, upper, False)
      tables[k], split = self.split(duals, k, threshold, deadline)
      upper[k] = min(upper[k], max(threshold, split))
    while True:
      open_sizes = [k for k in upper if upper[k] > threshold]
      if not open_sizes:
        break
      if stop():
        complete = False
        break
      k = max(open_sizes, key=lambda k: upper[k])
      target = threshold
      if upper[k] - threshold > 1e-3 * scale:
        target = threshold + (upper[k] - threshold) / 2
      got, rc, up, done = self.search(
          duals, k, target, exclude, deadline, collect=True,
          limit=None if limit is None else limit - len(rows), tables=tables.get(k),
          also=keys)
      rows.extend(got)
      rcs.extend(rc)
      keys.update(row_keys(got))
      upper[k] = min(upper[k], up)
      if not done:
        complete = False
        break
    return self._found(rows, rcs, upper, complete)

  def _found(self, rows, rcs, upper, complete) -> Found:
    order = np.argsort(-np.array(rcs), kind="stable")
    out = np.array(rows, dtype=bool).reshape(len(rows), self.space.num_blocks)[order]
    return Found(out, np.array(rcs, dtype=np.float64)[order], upper, complete)
