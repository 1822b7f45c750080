"""Objectives, feasibility checks and trivial heuristics for TSP, CVRP, OP and KP (NumPy only).

One instance is a dict of unbatched arrays (the batched generators' arrays
indexed at one position):

- ``tsp``:  ``locs`` (n, 2). A solution is a permutation of ``range(n)``, a
  closed tour.
- ``cvrp``: ``depot`` (2,), ``locs`` (n, 2), ``demand`` (n,) int, ``capacity``
  (). A solution is a list of routes, each a non-empty list of customer indices;
  every route starts and ends at the depot.
- ``op``:   ``depot`` (2,), ``locs`` (n, 2), ``prize`` (n,), ``max_length`` ().
  A solution is a list of distinct customers visited in order on a path
  depot → ... → depot no longer than ``max_length``.
- ``kp``:   ``weights`` (n,), ``values`` (n,), ``capacity`` (). A solution is a
  sorted list of chosen items.

Lengths and sums are computed in float64 from the (float32) instance, so every
caller (reference solver, neural solver, heuristic) is scored by one formula.

Examples:
  >>> import numpy as np
  >>> square = {"locs": np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)}
  >>> objective("tsp", square, [0, 1, 2, 3])
  4.0
  >>> check("tsp", square, [0, 1, 1, 3])
  Traceback (most recent call last):
  ...
  ValueError: tsp: the tour visits node 1 2 times (expected every node of 0..3 once)
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from tgroup.errors import UserError

PROBLEMS = ("tsp", "cvrp", "op", "kp")

# True where the objective is a cost (smaller is better), False where it is a gain.
MINIMISE = {"tsp": True, "cvrp": True, "op": False, "kp": False}

# Slack for float rounding in the length and weight limits; the reference solver
# works on integer-scaled data and the neural solver in float32.
OP_LENGTH_TOL = 1e-5
KP_WEIGHT_TOL = 1e-6

Instance = Mapping[str, Any]

_KEYS = {
    "tsp": ("locs",),
    "cvrp": ("depot", "locs", "demand", "capacity"),
    "op": ("depot", "locs", "prize", "max_length"),
    "kp": ("weights", "values", "capacity"),
}


def validate_problem(problem: str) -> None:
  """Raises :class:`UserError` unless ``problem`` is one of :data:`PROBLEMS`."""
  if problem not in _KEYS:
    raise UserError(f"unknown problem {problem!r}; expected one of {', '.join(PROBLEMS)}")


def validate_instance(problem: str, instance: Instance) -> None:
  """Raises :class:`UserError` for an unknown problem or an instance without its arrays."""
  validate_problem(problem)
  missing = [k for k in _KEYS[problem] if k not in instance]
  if missing:
    raise UserError(f"{problem} instance lacks {', '.join(missing)}")


def _instance(problem: str, instance: Instance) -> dict[str, np.ndarray]:
  """The instance's arrays in float64 (demands stay integers), keys checked."""
  validate_instance(problem, instance)
  out = {}
  for k in _KEYS[problem]:
    a = np.asarray(instance[k])
    out[k] = a.astype(np.int64) if k == "demand" else a.astype(np.float64)
  return out


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.sqrt(((a - b) ** 2).sum(-1))


def _path_length(points: np.ndarray) -> float:
  """Length of the open polyline through ``points`` (k, 2)."""
  if len(points) < 2:
    return 0.0
  return float(_dist(points[1:], points[:-1]).sum())


def _closed_via_depot(depot: np.ndarray, locs: np.ndarray, route) -> float:
  """Length of depot → route... → depot."""
  return _path_length(np.concatenate([depot[None], locs[np.asarray(route, int)], depot[None]]))


def _indices(problem: str, what: str, seq, n: int) -> np.ndarray:
  """``seq`` as int indices, each in range(n) and distinct, else ValueError."""
  a = np.asarray(seq)
  if a.size == 0:
    return np.zeros(0, np.int64)
  if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
    raise ValueError(f"{problem}: the {what} must be a flat list of integer indices")
  bad = a[(a < 0) | (a >= n)]
  if bad.size:
    raise ValueError(f"{problem}: the {what} holds index {int(bad[0])} outside 0..{n - 1}")
  counts = np.bincount(a, minlength=n)
  if counts.max() > 1:
    dup = int(np.argmax(counts))
    raise ValueError(f"{problem}: the {what} holds index {dup} {int(counts[dup])} times")
  return a.astype(np.int64)


def objective(problem: str, instance: Instance, solution) -> float:
  """Tour length (tsp), total route length (cvrp), total prize (op) or value (kp).

  Feasibility is not checked here (see :func:`check`); the value is that of the
  solution as given.

  Examples:
    >>> import numpy as np
    >>> kp = {"weights": np.array([0.5, 0.4]), "values": np.array([0.3, 0.9]),
    ...       "capacity": np.float32(1.0)}
    >>> round(objective("kp", kp, [0, 1]), 6)
    1.2
  """
  x = _instance(problem, instance)
  if problem == "tsp":
    tour = np.asarray(solution, int)
    if tour.size == 0:
      return 0.0
    pts = x["locs"][tour]
    return _path_length(np.concatenate([pts, pts[:1]]))
  if problem == "cvrp":
    return float(sum(_closed_via_depot(x["depot"], x["locs"], r) for r in solution))
  if problem == "op":
    return float(x["prize"][np.asarray(solution, int)].sum())
  return float(x["values"][np.asarray(solution, int)].sum())


def op_length(instance: Instance, solution) -> float:
  """Length of the OP path depot → solution... → depot."""
  x = _instance("op", instance)
  return _closed_via_depot(x["depot"], x["locs"], solution)


def check(problem: str, instance: Instance, solution) -> None:
  """Raises ValueError with a one-line reason when ``solution`` is infeasible.

  TSP: every node exactly once. CVRP: every customer exactly once over all
  routes, no empty route, each route's demand within capacity. OP: distinct
  valid indices, path length ≤ max_length + 1e-5. KP: distinct valid indices,
  weight ≤ capacity + 1e-6.

  Examples:
    >>> import numpy as np
    >>> cvrp = {"depot": np.zeros(2), "locs": np.ones((3, 2)),
    ...         "demand": np.array([2, 2, 1]), "capacity": np.int32(3)}
    >>> check("cvrp", cvrp, [[0, 2], [1]])
    >>> check("cvrp", cvrp, [[0, 1], [2]])
    Traceback (most recent call last):
    ...
    ValueError: cvrp: route 0 carries demand 4 > capacity 3
  """
  x = _instance(problem, instance)
  if problem == "tsp":
    n = len(x["locs"])
    tour = np.asarray(solution)
    if tour.size and (tour.ndim != 1 or not np.issubdtype(tour.dtype, np.integer)):
      raise ValueError("tsp: the tour must be a flat list of integer node indices")
    tour = tour.astype(np.int64)
    bad = tour[(tour < 0) | (tour >= n)]
    if bad.size:
      raise ValueError(f"tsp: the tour holds node {int(bad[0])} outside 0..{n - 1}")
    counts = np.bincount(tour, minlength=n)
    wrong = np.flatnonzero(counts != 1)
    if wrong.size:
      i = int(wrong[0])
      raise ValueError(f"tsp: the tour visits node {i} {int(counts[i])} times "
                       f"(expected every node of 0..{n - 1} once)")
    return
  if problem == "cvrp":
    n = len(x["locs"])
    routes = [np.asarray(r) for r in solution]
    for k, r in enumerate(routes):
      if r.size == 0:
        raise ValueError(f"cvrp: route {k} is empty")
      _indices("cvrp", f"route {k}", r, n)
    seen = np.concatenate(routes).astype(np.int64) if routes else np.zeros(0, np.int64)
    counts = np.bincount(seen, minlength=n)
    wrong = np.flatnonzero(counts != 1)
    if wrong.size:
      i = int(wrong[0])
      raise ValueError(f"cvrp: customer {i} is served {int(counts[i])} times (expected once)")
    cap = int(x["capacity"])
    for k, r in enumerate(routes):
      load = int(x["demand"][r.astype(np.int64)].sum())
      if load > cap:
        raise ValueError(f"cvrp: route {k} carries demand {load} > capacity {cap}")
    return
  if problem == "op":
    path = _indices("op", "path", solution, len(x["locs"]))
    length = _closed_via_depot(x["depot"], x["locs"], path)
    if length > x["max_length"] + OP_LENGTH_TOL:
      raise ValueError(f"op: the path is {length:.6f} long > max_length {x['max_length']:.6f}")
    return
  items = _indices("kp", "selection", solution, len(x["weights"]))
  weight = float(x["weights"][items].sum())
  if weight > x["capacity"] + KP_WEIGHT_TOL:
    raise ValueError(f"kp: the items weigh {weight:.7f} > capacity {x['capacity']:.7f}")


def is_better(problem: str, a: float, b: float) -> bool:
  """Whether objective ``a`` is strictly better than ``b`` for ``problem``."""
  return a < b if MINIMISE[problem] else a > b


def nearest_neighbour_tsp(instance: Instance) -> list[int]:
  """Tour that starts at node 0 and always moves to the nearest unvisited node.

  Examples:
    >>> import numpy as np
    >>> nearest_neighbour_tsp({"locs": np.array([[0, 0], [5, 0], [1, 0], [2, 0]])})
    [0, 2, 3, 1]
  """
  locs = _instance("tsp", instance)["locs"]
  n = len(locs)
  d = _dist(locs[:, None], locs[None])
  visited = np.zeros(n, bool)
  tour = [0]
  visited[0] = True
  for _ in range(n - 1):
    row = np.where(visited, np.inf, d[tour[-1]])
    nxt = int(np.argmin(row))  # ties: lowest index, so the tour is deterministic
    tour.append(nxt)
    visited[nxt] = True
  return tour


def nearest_neighbour_cvrp(instance: Instance) -> list[list[int]]:
  """Routes built by moving to the nearest unvisited customer that still fits.

  From the current position (the depot at first) the vehicle drives to the
  nearest unvisited customer whose demand fits the remaining capacity; when none
  fits it returns to the depot and a new route starts.

  Examples:
    >>> import numpy as np
    >>> inst = {"depot": np.zeros(2), "locs": np.array([[1., 0], [2, 0], [-1, 0]]),
    ...         "demand": np.array([2, 2, 2]), "capacity": np.int32(4)}
    >>> nearest_neighbour_cvrp(inst)
    [[0, 1], [2]]
  """
  x = _instance("cvrp", instance)
  locs, depot, demand, cap = x["locs"], x["depot"], x["demand"], int(x["capacity"])
  n = len(locs)
  if n and demand.max() > cap:
    raise UserError(f"cvrp: a customer's demand {int(demand.max())} exceeds capacity {cap}")
  d = _dist(locs[:, None], locs[None])
  from_depot = _dist(locs, depot)
  visited = np.zeros(n, bool)
  routes: list[list[int]] = []
  route: list[int] = []
  load = 0
  for _ in range(2 * n):  # each step serves a customer or closes a route: at most 2n steps
    if visited.all():
      break
    row = d[route[-1]] if route else from_depot
    ok = ~visited & (demand <= cap - load)
    if not ok.any():
      routes.append(route)
      route, load = [], 0
      continue
    nxt = int(np.argmin(np.where(ok, row, np.inf)))
    route.append(nxt)
    visited[nxt] = True
    load += int(demand[nxt])
  if route:
    routes.append(route)
  return routes


def greedy_op(instance: Instance) -> list[int]:
  """Path grown by the best prize per added length among nodes that keep it feasible.

  At each step every unvisited node j that can be appended while the path still
  returns to the depot within ``max_length`` is scored by prize_j divided by the
  closed tour's increase d(last, j) + d(j, depot) − d(last, depot); the best is
  appended. Stops when no node fits.

  Examples:
    >>> import numpy as np
    >>> inst = {"depot": np.zeros(2), "locs": np.array([[0.5, 0], [3, 0], [0, 0.5]]),
    ...         "prize": np.array([0.1, 0.9, 0.2]), "max_length": np.float32(2.0)}
    >>> greedy_op(inst)
    [2, 0]
  """
  x = _instance("op", instance)
  locs, depot, prize, limit = x["locs"], x["depot"], x["prize"], x["max_length"]
  n = len(locs)
  d = _dist(locs[:, None], locs[None])
  back = _dist(locs, depot)
  visited = np.zeros(n, bool)
  path: list[int] = []
  length = 0.0  # open path length from the depot to the last node
  for _ in range(n):
    here = d[path[-1]] if path else back
    here_back = back[path[-1]] if path else 0.0
    ok = ~visited & (length + here + back <= limit)
    if not ok.any():
      break
    # The closed tour's increase is ≥ 0 (triangle inequality); the floor keeps a
    # node on the current position from dividing by zero.
    added = np.maximum(here + back - here_back, 1e-12)
    nxt = int(np.argmax(np.where(ok, prize / added, -np.inf)))
    path.append(nxt)
    visited[nxt] = True
    length += here[nxt]
  return path


def greedy_kp(instance: Instance) -> list[int]:
  """Items by decreasing value/weight, each taken when it still fits (sorted indices).

  Examples:
    >>> import numpy as np
    >>> greedy_kp({"weights": np.array([0.6, 0.5, 0.4]), "values": np.array([0.9, 0.5, 0.5]),
    ...            "capacity": np.float32(1.0)})
    [0, 2]
  """
  x = _instance("kp", instance)
  w, v, cap = x["weights"], x["values"], x["capacity"]
  # Stable sort so equal ratios keep index order (deterministic).
  order = np.argsort(-v / np.maximum(w, 1e-12), kind="stable")
  chosen, load = [], 0.0
  for i in order:
    if load + w[i] <= cap:
      chosen.append(int(i))
      load += w[i]
  return sorted(chosen)


HEURISTICS: dict[str, Callable[[Instance], Any]] = {
    "tsp": nearest_neighbour_tsp,
    "cvrp": nearest_neighbour_cvrp,
    "op": greedy_op,
    "kp": greedy_kp,
}


def heuristic(problem: str, instance: Instance):
  """The trivial heuristic's solution for ``problem`` (see :data:`HEURISTICS`)."""
  validate_problem(problem)
  return HEURISTICS[problem](instance)


def unbatch(instances: Mapping[str, Any], b: int) -> dict[str, np.ndarray]:
  """Instance ``b`` of a dict of batched arrays."""
  return {k: np.asarray(v)[b] for k, v in instances.items()}


def batch_size(instances: Mapping[str, Any]) -> int:
  """The common leading dimension of a dict of batched arrays (UserError if they differ)."""
  sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in instances.items()}
  if not sizes or None in sizes.values() or len(set(sizes.values())) != 1:
    raise UserError(f"instances need arrays with one common leading (batch) axis, got "
                    f"{ {k: np.shape(v) for k, v in instances.items()} }")
  return next(iter(sizes.values()))
