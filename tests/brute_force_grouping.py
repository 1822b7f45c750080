"""Obviously-correct reference answers for small grouping problems.

Written from the definitions, sharing no code with tgroup.grouping except the
Constraints container (read field by field here, never its helpers), so that
agreement with the MIP means something. Slow on purpose; m <= 8 (partitions)
and m <= 5 (covers), except :func:`best_cover_by_blocks`.
:func:`network_choices` does the same for a table of trained networks.
"""
from __future__ import annotations

import itertools
import math

import numpy as np


def task_score(gains, objective, group, a):
  """Task a's score in `group` (task indices), straight from the definition."""
  others = [gains[i][a] for i in group if i != a]
  if objective == "principled":
    return (sum(others) + gains[a][a]) / len(group)
  if objective == "marginal":
    return sum(others) / len(group)
  if objective == "tag":
    return sum(others) / len(others)
  if objective == "hoa":
    return sum(others) / len(others) if others else gains[a][a]
  raise ValueError(objective)


def group_score(gains, objective, group):
  return sum(task_score(gains, objective, group, a) for a in group)


def group_allowed(tasks, objective, constraints, group):
  """Whether one group (a set of task indices) may be chosen at all."""
  names = {tasks[i] for i in group}
  size = len(group)
  if objective == "tag" and size < 2:
    return False
  if size < constraints.min_group_size:
    return False
  if constraints.max_group_size is not None and size > constraints.max_group_size:
    return False
  for a, b in constraints.must_link:
    if (a in names) != (b in names):
      return False
  for a, b in constraints.cannot_link:
    if a in names and b in names:
      return False
  for a in constraints.alone:
    if a in names and size > 1:
      return False
  return True


def count_ok(constraints, k):
  if constraints.num_groups is not None and k != constraints.num_groups:
    return False
  if constraints.max_groups is not None and k > constraints.max_groups:
    return False
  return True


def set_partitions(items):
  """Every partition of a list into non-empty blocks (Bell(len) of them)."""
  if not items:
    yield []
    return
  first, rest = items[0], items[1:]
  for partition in set_partitions(rest):
    yield [[first]] + partition
    for k in range(len(partition)):
      yield partition[:k] + [[first] + partition[k]] + partition[k + 1:]


def best_partition(tasks, gains, objective, constraints):
  """Best objective over all partitions satisfying the constraints, or None."""
  best = None
  for partition in set_partitions(list(range(len(tasks)))):
    if not count_ok(constraints, len(partition)):
      continue
    if not all(group_allowed(tasks, objective, constraints, set(g))
               for g in partition):
      continue
    value = sum(group_score(gains, objective, g) for g in partition)
    if best is None or value > best:
      best = value
  return best


def _allowed_subsets(tasks, objective, constraints):
  m = len(tasks)
  out = []
  for mask in range(1, 2**m):
    group = [i for i in range(m) if mask >> i & 1]
    if group_allowed(tasks, objective, constraints, set(group)):
      out.append((mask, group))
  return out


def _every_service(options):
  """Every way to pick, for each task, one network to serve it.

  ``options[t]`` lists ``(network, score)`` for the networks that may serve
  task t (a network is any int key). The enumeration is vectorised with NumPy
  broadcasting, one axis per task.

  Returns:
    ``(total, picked, first)``: the summed score of every pick, the network
    each task picked, and whether task t is the first to pick its network
    (so the chosen networks are those with ``first`` set), all broadcast.
  """
  m = len(options)
  axes = [np.arange(len(o)).reshape([-1 if u == t else 1 for u in range(m)])
          for t, o in enumerate(options)]
  scores = [np.array([score for _, score in o]) for o in options]
  keys = [np.array([network for network, _ in o]) for o in options]
  total = sum(scores[t][axes[t]] for t in range(m))
  picked = [keys[t][axes[t]] for t in range(m)]
  first = []
  for t in range(m):
    new = np.ones(total.shape, dtype=bool)
    for u in range(t):
      new = new & (picked[t] != picked[u])
    first.append(new)
  return total, picked, first


def _count_mask(constraints, distinct):
  ok = np.ones(distinct.shape, dtype=bool)
  if constraints.num_groups is not None:
    ok &= distinct == constraints.num_groups
  if constraints.max_groups is not None:
    ok &= distinct <= constraints.max_groups
  return ok


def best_cover(tasks, gains, objective, constraints):
  """Best cover objective, by enumerating who serves whom, or None.

  Every task picks one allowed group containing it to serve it; the chosen
  groups are exactly the picked ones (so each serves at least one task) and
  their number must satisfy num_groups/max_groups. This is "choose groups,
  serve each task by its best chosen group" with the rule that a chosen group
  serves somebody.
  """
  m = len(tasks)
  subsets = _allowed_subsets(tasks, objective, constraints)
  options = [[(mask, task_score(gains, objective, g, t)) for mask, g in subsets
              if mask >> t & 1] for t in range(m)]
  if not all(options):
    return None
  total, _, first = _every_service(options)
  ok = _count_mask(constraints, sum(f.astype(np.int64) for f in first))
  if not ok.any():
    return None
  return float(total[ok].max())


def cover_choices(tasks, gains, objective, constraints, cost, max_network_cost=None,
                  half_size=False):
  """Every cover's (objective, cost of its networks), as two flat arrays.

  As :func:`best_cover`, where each allowed group is a full-size network and,
  with `half_size`, each allowed singleton also a half-size one (scored like
  the full one). A network costs ``cost(sorted task indices, half)``, paid once
  however many tasks it serves; every chosen network (one that serves a task)
  costs at most `max_network_cost` (None: no cap). The best cover within a
  total budget b is ``objective[cost <= b].max()``. Empty arrays: no cover.
  """
  m = len(tasks)
  networks = [(tuple(g), False) for _, g in _allowed_subsets(tasks, objective, constraints)]
  if half_size:
    networks += [(g, True) for g, _ in networks if len(g) == 1]
  price = [cost(g, half) for g, half in networks]
  options = [[(k, task_score(gains, objective, g, t)) for k, (g, _) in enumerate(networks)
              if t in g and (max_network_cost is None or price[k] <= max_network_cost)]
             for t in range(m)]
  if not all(options):
    return np.zeros(0), np.zeros(0)
  value, picked, first = _every_service(options)
  price = np.array(price)
  spent = sum(np.where(first[t], price[picked[t]], 0.0) for t in range(m))
  ok = _count_mask(constraints, sum(f.astype(np.int64) for f in first))
  return value[ok], spent[ok]


def best_cover_collections(tasks, gains, objective, constraints):
  """The literal TAG selection: every collection of <= k distinct allowed
  groups covering all tasks, each task scored by its best group in it.

  Only for max_groups (no num_groups), tiny m.
  """
  assert constraints.num_groups is None
  m = len(tasks)
  subsets = [set(g) for _, g in _allowed_subsets(tasks, objective, constraints)]
  k_max = m if constraints.max_groups is None else min(m, constraints.max_groups)
  best = None
  for k in range(1, k_max + 1):
    for collection in itertools.combinations(subsets, k):
      if set().union(*collection) != set(range(m)):
        continue
      value = sum(max(task_score(gains, objective, g, t)
                      for g in collection if t in g) for t in range(m))
      if best is None or value > best:
        best = value
  return best


def best_cover_by_blocks(tasks, gains, objective, constraints):
  """Best cover under max_groups for larger m (TAG's 9 CelebA tasks).

  The tasks served by one chosen group form a block; so the optimum is the
  best partition of the tasks into at most k blocks, each block B scored by
  its best allowed group S containing it (sum over t in B of t's score in S).
  Two blocks picking the same S never beat the partition that merges them, so
  distinctness needs no check when only a maximum is imposed.
  """
  assert constraints.num_groups is None
  m = len(tasks)
  subsets = _allowed_subsets(tasks, objective, constraints)
  score = {mask: {t: task_score(gains, objective, g, t) for t in g}
           for mask, g in subsets}
  best_for_block = {}
  for block in range(1, 2**m):
    members = [t for t in range(m) if block >> t & 1]
    values = [sum(score[mask][t] for t in members)
              for mask, _ in subsets if mask & block == block]
    best_for_block[block] = max(values) if values else None
  k_max = m if constraints.max_groups is None else constraints.max_groups
  best = None
  for partition in set_partitions(list(range(m))):
    if len(partition) > k_max:
      continue
    values = [best_for_block[sum(1 << t for t in b)] for b in partition]
    if any(v is None for v in values):
      continue
    value = sum(values)
    if best is None or value > best:
      best = value
  return best


def network_choices(losses: np.ndarray, costs: np.ndarray):
  """Every per-task choice of serving network: (summed loss, cost of the networks used).

  ``losses[n, t]`` is task t's loss on network n (NaN: n does not serve t). An
  optimal selection is fixed by which network serves each task, so the best
  total within a budget is ``total[cost <= budget].min()``. A network's bit in
  a uint64 mask marks it used, so a network serving several tasks is paid
  once; per-byte lookup tables turn masks into costs.
  """
  n, m = losses.shape
  assert n <= 64
  total = np.zeros(())
  used = np.zeros((), dtype=np.uint64)
  for t in range(m):
    options = np.flatnonzero(np.isfinite(losses[:, t]))
    total = total[..., None] + losses[options, t]
    used = used[..., None] | (np.uint64(1) << options.astype(np.uint64))
  total, used = total.ravel(), used.ravel()
  padded = np.zeros(64)
  padded[:n] = costs
  bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
  cost = np.zeros(len(used))
  for byte in range(8):
    lookup = bits @ padded[8 * byte:8 * byte + 8]
    cost += lookup[((used >> np.uint64(8 * byte)) & np.uint64(255)).astype(np.intp)]
  return total, cost


def verify_grouping(result, gains, objective, constraints, overlap):
  """Asserts that a Grouping obeys the constraints and re-scores correctly."""
  tasks = list(result.tasks)
  index = {t: i for i, t in enumerate(tasks)}
  groups = [[index[t] for t in g] for g in result.groups]
  for g in groups:
    assert g == sorted(g), f"group {g} not in task order"
    assert group_allowed(tasks, objective, constraints, set(g)), g
  assert groups == sorted(groups), "groups not in canonical order"
  assert len(set(map(tuple, groups))) == len(groups), "duplicate group"
  assert count_ok(constraints, len(groups)), len(groups)
  seen = [sum(t in g for g in groups) for t in range(len(tasks))]
  if overlap:
    assert all(s >= 1 for s in seen), seen
  else:
    assert all(s == 1 for s in seen), seen
  assert set(result.assignment) == set(tasks)
  served = set()
  total = []
  for name, k in result.assignment.items():
    t = index[name]
    assert t in groups[k], (name, groups[k])
    served.add(k)
    total.append(task_score(gains, objective, groups[k], t))
  assert served == set(range(len(groups))), "a chosen group serves no task"
  assert math.isclose(math.fsum(total), result.objective, rel_tol=0,
                      abs_tol=1e-9), (math.fsum(total), result.objective)
