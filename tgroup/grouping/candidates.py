"""Which groups the MIP may choose from: all of them, or generated columns.

Groups are built from must_link blocks (a group holds all of a block or none of
it), so must_link never has to be checked by enumeration. Every candidate is
finally passed through :func:`allowed_groups`, the one definition of which
groups the constraints allow.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from tgroup.grouping.constraints import Constraints
from tgroup.grouping.constraints import allowed_groups
from tgroup.grouping.constraints import link_blocks
from tgroup.grouping.scores import min_group_size

# Above this many blocks, enumerating every subset as bitmasks costs more
# memory than it is worth (2**20 rows); larger problems use size caps or
# generated columns.
_MAX_BITMASK_BLOCKS = 20


def build_candidates(tasks: Sequence[str], gains: np.ndarray, objective: str,
                     constraints: Constraints, max_candidates: int = 2**16,
                     seed: int = 0) -> tuple[np.ndarray, str]:
  """Candidate groups as a boolean (n, m) matrix, and how they were found.

  Args:
    tasks: task names, in matrix order.
    gains: float array (m, m), already checked.
    objective: the grouping objective (decides scores and TAG's size floor).
    constraints: already checked against `tasks`.
    max_candidates: enumerate every allowed group when there are at most this
      many, otherwise generate columns. The count is bounded from the size
      limits (in must_link blocks); with cannot_link or alone and at most 20
      blocks it is counted exactly.
    seed: seeds the random part of column generation.

  Returns:
    ``(membership, kind)`` where kind is "all" when every allowed group is a
    row (the optimum over them is the true optimum) and "generated" when the
    rows are heuristic columns. Rows are unique, in a deterministic order.

  Examples:
    >>> import numpy as np
    >>> groups, kind = build_candidates(["a", "b", "c"], np.zeros((3, 3)),
    ...                                 "principled", Constraints(alone=["c"]))
    >>> kind, groups.astype(int).tolist()
    ('all', [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
  """
  m = len(tasks)
  blocks = link_blocks(tasks, constraints)
  block_members = np.zeros((len(blocks), m), dtype=bool)
  for b, block in enumerate(blocks):
    block_members[b, list(block)] = True
  floor = min_group_size(objective)

  def keep(block_rows):
    groups = (block_rows.astype(np.int64) @ block_members) > 0
    return groups[allowed_groups(groups, tasks, constraints, floor)]

  nb = len(blocks)
  # Size bounds in blocks: fewer than `lo` blocks cannot reach the minimum
  # size, more than `cap` blocks exceed the maximum.
  largest = int(block_members.sum(axis=1).max())
  lo = max(1, -(-max(constraints.min_group_size, floor) // largest))
  cap = nb if constraints.max_group_size is None else min(
      nb, constraints.max_group_size)
  bound = sum(math.comb(nb, s) for s in range(lo, cap + 1))
  if bound <= max_candidates:
    return keep(_block_subsets(nb, lo, cap)), "all"
  if (nb <= _MAX_BITMASK_BLOCKS
      and (constraints.cannot_link or constraints.alone)):
    # Links may prune far below the size bound; counting needs enumerating.
    groups = keep(_block_subsets(nb, lo, cap))
    if len(groups) <= max_candidates:
      return groups, "all"
  rng = np.random.default_rng(seed)
  rows = generate_block_groups(block_members, gains, objective, constraints,
                               tasks, rng)
  return np.unique(keep(rows), axis=0), "generated"


def _block_subsets(nb: int, lo: int, cap: int) -> np.ndarray:
  """Every set of `lo` to `cap` blocks, as bool rows, in a fixed order."""
  wanted = sum(math.comb(nb, s) for s in range(lo, cap + 1))
  # Bitmasks are fastest when most subsets are wanted, combinations otherwise.
  if nb <= _MAX_BITMASK_BLOCKS and 2**nb <= 4 * wanted + 1024:
    masks = np.arange(1, 2**nb, dtype=np.int64)
    rows = ((masks[:, None] >> np.arange(nb)) & 1).astype(bool)
    size = rows.sum(axis=1)
    return rows[(size >= lo) & (size <= cap)]
  parts = []
  for size in range(lo, cap + 1):
    combos = np.array(list(itertools.combinations(range(nb), size)),
                      dtype=np.int64).reshape(-1, size)
    rows = np.zeros((len(combos), nb), dtype=bool)
    rows[np.arange(len(combos))[:, None], combos] = True
    parts.append(rows)
  return np.concatenate(parts, axis=0) if parts else np.zeros((0, nb), bool)


def _group_value(total: np.ndarray, size: np.ndarray,
                 objective: str) -> np.ndarray:
  """Group score from the sum of the (effective) gains inside the group."""
  if objective in ("tag", "hoa"):
    # A singleton has no TAG score (HOA's needs the diagonal, which growth
    # zeroes); 0 ranks it neutrally during growth. The MIP scores exactly.
    return np.where(size > 1, total / np.maximum(size - 1, 1), 0.0)
  return total / size


def generate_block_groups(block_members: np.ndarray, gains: np.ndarray,
                          objective: str, constraints: Constraints,
                          tasks: Sequence[str],
                          rng: np.random.Generator) -> np.ndarray:
  """Heuristic candidate groups, as rows over must_link blocks.

  Columns: every single block and compatible pair; greedy growth from strong
  pairs, keeping every intermediate group (so large groups exist when few
  groups are wanted); an agglomerative merge hierarchy (so every number of
  groups down to the coarsest it reaches has a partition); the best of a few
  seeded random groups; and the complement of each of these.

  Args:
    block_members: bool (nb, m), the must_link blocks.
    gains: float (m, m).
    objective: decides the group score used for ranking.
    constraints: cannot_link, alone and max_group_size limit growth.
    tasks: task names.
    rng: the only source of randomness.

  Returns:
    bool (k, nb), possibly with duplicates and rows the constraints forbid
    (the caller filters).

  Examples:
    >>> import numpy as np
    >>> rows = generate_block_groups(np.eye(3, dtype=bool), np.ones((3, 3)),
    ...                              "marginal", Constraints(), "abc",
    ...                              np.random.default_rng(0))
    >>> bool(rows.all(axis=1).any())  # the merge hierarchy reaches everything
    True
  """
  nb, m = block_members.shape
  bm = block_members.astype(np.float64)
  g = np.array(gains, dtype=np.float64)
  if objective != "principled":
    np.fill_diagonal(g, 0.0)
  inner = bm @ g @ bm.T  # gains summed between blocks
  block_size = block_members.sum(axis=1).astype(np.float64)
  max_size = constraints.max_group_size or m

  task_block = np.empty(m, dtype=np.int64)
  for b in range(nb):
    task_block[block_members[b]] = b
  clash, solitary = block_conflicts(task_block, nb, tasks, constraints)

  rows = [np.eye(nb, dtype=bool)]

  pair_ok = ~clash & ~solitary[:, None] & ~solitary[None, :]
  pair_ok &= (block_size[:, None] + block_size[None, :]) <= max_size
  np.fill_diagonal(pair_ok, False)
  pair_total = (inner + inner.T + np.diag(inner)[:, None]
                + np.diag(inner)[None, :])
  pair_value = np.where(pair_ok, _group_value(
      pair_total, block_size[:, None] + block_size[None, :], objective),
                        -np.inf)
  ii, jj = np.nonzero(np.triu(pair_ok, 1))
  if len(ii):
    pairs = np.zeros((len(ii), nb), dtype=bool)
    pairs[np.arange(len(ii)), ii] = True
    pairs[np.arange(len(ii)), jj] = True
    rows.append(pairs)

  def grow(start: np.ndarray) -> list[np.ndarray]:
    member = start.copy()
    out = []
    while True:
      total = member @ inner @ member
      gain = member @ inner + inner @ member + np.diag(inner)
      size = member @ block_size + block_size
      ok = (~member.astype(bool) & ~solitary & ~clash[member.astype(bool)].any(
          axis=0) & (size <= max_size))
      if not ok.any():
        return out
      value = np.where(ok, _group_value(total + gain, size, objective),
                       -np.inf)
      member = member.copy()
      member[int(np.argmax(value))] = 1.0
      out.append(member.astype(bool))

  # Strong pairs: each block's best partner, plus the best pairs overall.
  seeds = set()
  for b in range(nb):
    if np.isfinite(pair_value[b]).any():
      c = int(np.argmax(pair_value[b]))
      seeds.add((min(b, c), max(b, c)))
  order = np.argsort(-pair_value[ii, jj], kind="stable")[:nb]
  seeds.update((int(ii[k]), int(jj[k])) for k in order)
  for b, c in sorted(seeds):
    start = np.zeros(nb)
    start[[b, c]] = 1.0
    grown = grow(start)
    if grown:
      rows.append(np.array(grown))

  rows.append(_merge_hierarchy(inner, block_size, clash, solitary, max_size,
                               objective))
  rows.append(_best_random(inner, block_size, clash, solitary, max_size,
                           objective, constraints.min_group_size, rng))
  rows = np.concatenate([r.reshape(-1, nb) for r in rows], axis=0)
  # The complement of a good group (alone tasks aside) completes it to a
  # two-group partition; without it a strong group can be unusable when few
  # groups are asked for.
  return np.concatenate([rows, ~rows & ~solitary], axis=0)


def block_conflicts(task_block: np.ndarray, num_blocks: int, tasks: Sequence[str],
                    constraints: Constraints) -> tuple[np.ndarray, np.ndarray]:
  """``(clash, solitary)`` over must_link blocks: bool (nb, nb) pairs of blocks that
  cannot_link keeps apart, and bool (nb,) blocks holding a task that must be alone.

  Examples:
    >>> clash, solitary = block_conflicts(np.array([0, 0, 1]), 2, "abc",
    ...                                   Constraints(cannot_link=[("a", "c")]))
    >>> clash.tolist(), solitary.tolist()
    ([[False, True], [True, False]], [False, False])
  """
  index = {t: i for i, t in enumerate(tasks)}
  clash = np.zeros((num_blocks, num_blocks), dtype=bool)
  for a, b in constraints.cannot_link:
    ba, bb = task_block[index[a]], task_block[index[b]]
    clash[ba, bb] = clash[bb, ba] = True
  solitary = np.zeros(num_blocks, dtype=bool)
  for name in constraints.alone:
    solitary[task_block[index[name]]] = True
  return clash, solitary


def _merge_hierarchy(inner, block_size, clash, solitary, max_size,
                     objective) -> np.ndarray:
  """Agglomerative clustering: repeatedly merge the best compatible pair."""
  nb = len(block_size)
  clusters = [np.eye(nb)[b] for b in range(nb) if not solitary[b]]
  out = []
  while len(clusters) > 1:
    c = np.array(clusters)
    total = np.einsum("ib,bd,id->i", c, inner, c)
    cross = c @ inner @ c.T
    size = c @ block_size
    merged_size = size[:, None] + size[None, :]
    merged = _group_value(total[:, None] + total[None, :] + cross + cross.T,
                          merged_size, objective)
    alone_value = _group_value(total, size, objective)
    gain = merged - alone_value[:, None] - alone_value[None, :]
    blocked = (c @ clash.astype(np.float64) @ c.T) > 0
    ok = ~blocked & (merged_size <= max_size)
    np.fill_diagonal(ok, False)
    if not ok.any():
      break
    i, j = np.unravel_index(np.argmax(np.where(ok, gain, -np.inf)), ok.shape)
    union = c[i] + c[j]
    clusters = [x for k, x in enumerate(clusters) if k not in (i, j)]
    clusters.append(union)
    out.append(union > 0)
  return np.array(out, dtype=bool).reshape(-1, nb)


def _best_random(inner, block_size, clash, solitary, max_size, objective,
                 min_size, rng) -> np.ndarray:
  """The best few of some random compatible groups of random target sizes."""
  nb = len(block_size)
  draws, keep = 8 * nb, nb
  found, values = [], []
  free = np.flatnonzero(~solitary)
  if len(free) == 0:
    return np.zeros((0, nb), dtype=bool)
  hi = min(max_size, int(block_size[free].sum()))
  lo = min(max(min_size, 2), hi)
  for _ in range(draws):
    target = rng.integers(lo, hi + 1)
    member = np.zeros(nb)
    size = 0.0
    for b in rng.permutation(free):
      if size >= target:
        break
      if size + block_size[b] > max_size or clash[b][member > 0].any():
        continue
      member[b] = 1.0
      size += block_size[b]
    found.append(member > 0)
    values.append(float(_group_value(member @ inner @ member, size,
                                     objective)))
  best = np.argsort(-np.array(values), kind="stable")[:keep]
  return np.array(found)[best].reshape(-1, nb)
