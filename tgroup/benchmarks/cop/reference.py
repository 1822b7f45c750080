"""Reference solutions for TSP, CVRP, OP (OR-Tools routing) and KP (exact, CBC), cached on disk.

- TSP, CVRP: OR-Tools' routing solver, a PATH_CHEAPEST_ARC first solution, then
  guided local search until ``seconds`` run out (GLS never stops early: every
  instance costs ``seconds`` plus model building). CVRP has one vehicle per
  customer (enough for any instance whose demands fit the capacity) and a
  capacity dimension. Measured against SAVINGS and PARALLEL_CHEAPEST_INSERTION
  on CVRP20/50 the first-solution strategy changed the result by under 1 %.
- OP: one vehicle; every customer in a disjunction whose drop penalty is its
  prize; a length dimension of capacity ``floor(max_length · SCALE)`` over arc
  lengths rounded *up*, so every path the solver accepts is feasible in float.
  Guided local search stalls on OP (see :func:`_solve_op`), so the search is an
  iterated local search: OR-Tools' greedy descent from a randomly perturbed
  path, repeated until ``seconds`` (model building included) run out.
- KP: exact 0/1 knapsack with python-mip's CBC (gap tolerances zero);
  ``seconds`` is ignored and a solve that does not prove optimality raises.

Distances are scaled by :data:`SCALE` and rounded to integers for the solver;
the objective reported is recomputed in float64 by :func:`problems.objective`.
A time-limited search depends on CPU speed and load, so two runs may differ
slightly (rarely for n ≤ 20, where it usually finds the optimum).

Every returned solution passes :func:`problems.check`; a solver bug raises
instead of becoming a reference. :func:`references` caches a batch's
objectives in an ``.npz`` keyed by a fingerprint of instances and settings.

Examples:
  >>> import numpy as np
  >>> locs = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], np.float32)
  >>> value, tour = solve("tsp", {"locs": locs}, seconds=0.05)
  >>> round(value, 4), sorted(tour)
  (4.0, [0, 1, 2, 3])
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import io as std_io
import math
import multiprocessing
import sys
import time
import zipfile
from typing import Any, Callable, Mapping

import mip
import numpy as np
import ortools
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from tgroup import io
from tgroup.benchmarks.cop import problems
from tgroup.errors import UserError

# Coordinates live in the unit square: 1e5 keeps rounding errors ≤ 5e-6 per arc
# while tour costs stay far inside int64.
SCALE = 100_000
# Kool et al.'s OP prizes are multiples of 0.01; 1e6 resolves other prizes to 1e-6.
PRIZE_SCALE = 1_000_000
# OP's arc costs, a tie-break: a feasible path costs about OP_TIE (see _solve_op).
OP_TIE = 1000

_FSS = routing_enums_pb2.FirstSolutionStrategy
_LSM = routing_enums_pb2.LocalSearchMetaheuristic

# First-solution strategy per problem.
FIRST_SOLUTION = {
    "tsp": "PATH_CHEAPEST_ARC",
    "cvrp": "PATH_CHEAPEST_ARC",
    "op": "PATH_CHEAPEST_ARC",
}
# The search after the first solution, per problem (see _solve_op for OP's).
SEARCH = {
    "tsp": "guided local search",
    "cvrp": "guided local search",
    "op": "iterated greedy descent with random ruin and forced insertion",
}

ORTOOLS_VERSION = ortools.__version__
MIP_VERSION = mip.__version__

ProgressFn = Callable[[int, int], None]


def describe(problem: str, seconds: float) -> str:
  """One line naming the reference solver and its settings, for logs and reports.

  Examples:
    >>> describe("kp", 1.0).startswith("python-mip")
    True
  """
  problems.validate_problem(problem)
  if problem == "kp":
    return f"python-mip {MIP_VERSION} CBC, exact 0/1 knapsack (proved optimal, no time limit)"
  return (f"OR-Tools {ORTOOLS_VERSION} routing, {FIRST_SOLUTION[problem]} then "
          f"{SEARCH[problem]}, {seconds:g} s per instance")


def _distances(points: np.ndarray) -> np.ndarray:
  """Float64 Euclidean distance matrix of points (m, 2)."""
  p = np.asarray(points, np.float64)
  return np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))


def _params(problem: str, seconds: float):
  if not seconds > 0:
    raise UserError(f"seconds must be positive, got {seconds}")
  params = pywrapcp.DefaultRoutingSearchParameters()
  params.first_solution_strategy = getattr(_FSS, FIRST_SOLUTION[problem])
  params.local_search_metaheuristic = _LSM.GUIDED_LOCAL_SEARCH
  params.time_limit.FromMilliseconds(max(1, int(round(seconds * 1000))))
  return params


def _routes(routing, manager, assignment, num_vehicles: int) -> list[list[int]]:
  """Each vehicle's visited nodes (depot excluded), in order."""
  out = []
  for v in range(num_vehicles):
    index = routing.Start(v)
    route = []
    index = assignment.Value(routing.NextVar(index))
    while not routing.IsEnd(index):
      route.append(manager.IndexToNode(index))
      index = assignment.Value(routing.NextVar(index))
    out.append(route)
  return out


def _run(routing, params, problem: str):
  assignment = routing.SolveWithParameters(params)
  if assignment is None:
    raise RuntimeError(f"{problem}: OR-Tools found no solution (status {routing.status()})")
  return assignment


def _solve_tsp(instance, seconds: float) -> list[int]:
  locs = np.asarray(instance["locs"])
  n = len(locs)
  if n <= 3:  # every tour has the same length
    return list(range(n))
  cost = np.rint(_distances(locs) * SCALE).astype(np.int64)
  manager = pywrapcp.RoutingIndexManager(n, 1, 0)
  routing = pywrapcp.RoutingModel(manager)
  routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost.tolist()))
  assignment = _run(routing, _params("tsp", seconds), "tsp")
  return [0] + _routes(routing, manager, assignment, 1)[0]


def _solve_cvrp(instance, seconds: float) -> list[list[int]]:
  locs = np.asarray(instance["locs"])
  n = len(locs)
  demand = np.asarray(instance["demand"]).astype(np.int64)
  capacity = int(instance["capacity"])
  if n and demand.max() > capacity:
    raise UserError(f"cvrp: a customer's demand {int(demand.max())} exceeds capacity {capacity}")
  if n == 0:
    return []
  # Node 0 is the depot, node i + 1 customer i.
  points = np.concatenate([np.asarray(instance["depot"])[None], locs])
  cost = np.rint(_distances(points) * SCALE).astype(np.int64)
  manager = pywrapcp.RoutingIndexManager(n + 1, n, 0)
  routing = pywrapcp.RoutingModel(manager)
  routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost.tolist()))
  load = routing.RegisterUnaryTransitVector([0] + demand.tolist())
  routing.AddDimensionWithVehicleCapacity(load, 0, [capacity] * n, True, "load")
  assignment = _run(routing, _params("cvrp", seconds), "cvrp")
  routes = _routes(routing, manager, assignment, n)
  return [[i - 1 for i in r] for r in routes if r]


def _perturb_op(path: list[int], length: np.ndarray, limit: int,
                rng: np.random.Generator) -> list[int]:
  """A random neighbour of an OP path (nodes 1..n; node 0 the depot) within the limit.

  Drops a random number (0..|path|) of visited nodes, then forces one random
  unvisited node that the limit allows into its cheapest position, and drops
  further random nodes (never the forced one) until the path fits again.
  Dropping alone is not enough: greedy descent refills a ruined path the same
  way every time, so the search cycled between a few local optima (seen on a
  7-node instance whose optimum it never reached).
  """
  path = list(path)
  if path:
    drop = set(rng.choice(len(path), int(rng.integers(0, len(path) + 1)), replace=False).tolist())
    path = [v for j, v in enumerate(path) if j not in drop]
  n = len(length) - 1
  outside = np.setdiff1d(np.arange(1, n + 1), path)
  outside = outside[length[0, outside] + length[outside, 0] <= limit]
  if outside.size == 0:
    return path
  u = int(rng.choice(outside))
  seq = np.array([0] + path + [0])
  added = length[seq[:-1], u] + length[u, seq[1:]] - length[seq[:-1], seq[1:]]
  pos = int(np.argmin(added))
  path = path[:pos] + [u] + path[pos:]

  def total(p):
    s = np.array([0] + p + [0])
    return int(length[s[:-1], s[1:]].sum())
  while total(path) > limit:
    others = [j for j, v in enumerate(path) if v != u]
    del path[int(rng.choice(others))]
  return path


def _solve_op(instance, seconds: float, seed: int = 0) -> list[int]:
  locs = np.asarray(instance["locs"])
  n = len(locs)
  if n == 0:
    return []
  start = time.perf_counter()
  points = np.concatenate([np.asarray(instance["depot"])[None], locs])
  dist = _distances(points)
  max_length = float(instance["max_length"])
  # Length dimension: arcs rounded up and the limit down, so the solver's
  # integer feasibility implies float feasibility.
  length = np.ceil(dist * SCALE).astype(np.int64)
  limit = max(int(math.floor(max_length * SCALE)), 0)
  manager = pywrapcp.RoutingIndexManager(n + 1, 1, 0)
  routing = pywrapcp.RoutingModel(manager)
  # Arc cost: a tie-break towards shorter paths, so local search shortens the
  # path and makes room for more prizes. A feasible path costs at most OP_TIE
  # plus half a unit of rounding per arc, less than the multiplier on every
  # prize unit: no length saving ever outweighs a prize.
  tie = np.rint(dist / max(max_length, 1e-9) * OP_TIE).astype(np.int64)
  routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(tie.tolist()))
  routing.AddDimension(routing.RegisterTransitMatrix(length.tolist()), 0, limit, True, "length")
  unit = OP_TIE + n + 2
  prize = np.rint(np.asarray(instance["prize"], np.float64) * PRIZE_SCALE).astype(np.int64)
  for i in range(n):
    routing.AddDisjunction([manager.NodeToIndex(i + 1)], int(prize[i] * unit))
  # Guided local search stalls on OP: it penalises arcs, but the objective is
  # which nodes are visited, and the first local optimum is kept to the end
  # (measured on six OP20 instances: mean prize 4.0 after 0.1 s and after 1 s,
  # where the optimum is 5.1). Instead:
  # iterated local search with OR-Tools' greedy descent as the local search and
  # a random perturbation (see _perturb_op); ties are accepted so the search
  # drifts across plateaus.
  params = _params("op", seconds)
  params.local_search_metaheuristic = _LSM.GREEDY_DESCENT
  assignment = _run(routing, params, "op")
  path = _routes(routing, manager, assignment, 1)[0]
  cost = best_cost = assignment.ObjectiveValue()
  best = path
  rng = np.random.default_rng(seed)
  while (left := seconds - (time.perf_counter() - start)) > 1e-3:
    kept = _perturb_op(path, length, limit, rng)
    params.time_limit.FromMilliseconds(max(1, int(left * 1000)))
    ruined = routing.ReadAssignmentFromRoutes([[manager.NodeToIndex(v) for v in kept]], True)
    if ruined is None:  # cannot happen (_perturb_op keeps the limit); be safe
      continue
    improved = routing.SolveFromAssignmentWithParameters(ruined, params)
    if improved is None:
      continue
    if improved.ObjectiveValue() <= cost:
      path, cost = _routes(routing, manager, improved, 1)[0], improved.ObjectiveValue()
      if cost < best_cost:
        best, best_cost = path, cost
  return [i - 1 for i in best]


def _solve_kp(instance) -> list[int]:
  w = np.asarray(instance["weights"], np.float64)
  v = np.asarray(instance["values"], np.float64)
  n = len(w)
  if n == 0:
    return []
  model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
  model.verbose = 0
  model.threads = 1
  # Exact: no relative or absolute optimality gap is tolerated.
  model.max_mip_gap = 0.0
  model.max_mip_gap_abs = 0.0
  x = [model.add_var(var_type=mip.BINARY) for _ in range(n)]
  model.objective = mip.xsum(float(v[i]) * x[i] for i in range(n))
  model += mip.xsum(float(w[i]) * x[i] for i in range(n)) <= float(instance["capacity"])
  status = model.optimize()
  if status != mip.OptimizationStatus.OPTIMAL:
    raise RuntimeError(f"kp: CBC ended with status {status.name}, not OPTIMAL")
  return [i for i in range(n) if x[i].x >= 0.5]


def solve(problem: str, instance: Mapping[str, Any], seconds: float) -> tuple[float, Any]:
  """Reference (objective, solution) of one instance (a dict of unbatched arrays).

  Args:
    problem: "tsp", "cvrp", "op" or "kp".
    instance: the instance's arrays, as in :mod:`problems`.
    seconds: the routing search's time limit (for "op" model building included;
      ignored for "kp", which is solved exactly).

  Returns:
    The objective recomputed in float by :func:`problems.objective`, and the
    solution (tour, list of routes, path or sorted item list).

  Examples:
    >>> import numpy as np
    >>> kp = {"weights": np.array([0.5, 0.4, 0.3]), "values": np.array([0.5, 0.5, 0.1]),
    ...       "capacity": np.float32(0.8)}
    >>> solve("kp", kp, seconds=0.1)[1]
    [1, 2]
  """
  problems.validate_instance(problem, instance)
  if problem == "tsp":
    solution = _solve_tsp(instance, seconds)
  elif problem == "cvrp":
    solution = _solve_cvrp(instance, seconds)
  elif problem == "op":
    solution = _solve_op(instance, seconds)
  else:
    solution = _solve_kp(instance)
  try:
    problems.check(problem, instance, solution)
  except ValueError as e:
    raise AssertionError(f"reference solver returned an infeasible solution: {e}") from e
  return problems.objective(problem, instance, solution), solution


def _solve_one(args) -> float:
  """Worker entry point (module level, so spawned processes can import it)."""
  problem, instance, seconds = args
  return solve(problem, instance, seconds)[0]


def stderr_progress(label: str) -> ProgressFn:
  """A progress callback printing ``label: done/total`` on stderr about every 10 %."""
  state = {"next": 0}

  def report(done: int, total: int) -> None:
    if done >= state["next"] or done == total:
      print(f"{label}: {done}/{total} reference solutions", file=sys.stderr, flush=True)
      state["next"] = done + max(1, math.ceil(total / 10))
  return report


def default_workers() -> int:
  """Processes :func:`solve_batch` uses when not told: one.

  Measured on this project's 2-core machine, shared with other jobs (load about
  3), with JAX loaded in the parent: 2 workers took 4.6 s against 3.3 s for 32
  TSP50 instances at 0.1 s, and 9.7 s against 13.0 s for 128 TSP20 instances,
  each worker's start costs seconds (it re-imports the caller's main module),
  and the time-limited searches got less CPU each, so their mean tour came out
  slightly longer. More workers pay only for large batches on idle cores.
  """
  return 1


def solve_batch(problem: str, instances: Mapping[str, Any], seconds: float,
                workers: int | None = None, progress: ProgressFn | None = None) -> np.ndarray:
  """Reference objectives (B,) float64 of a batch (a dict of arrays with leading axis B).

  With ``workers`` > 1 the instances are solved in that many processes started
  with "forkserver" (or "spawn" where that is missing): JAX may be loaded in the
  caller, and forking a process that runs JAX threads can deadlock. As with any
  such pool, a calling script must keep its work under
  ``if __name__ == "__main__":`` (the workers import the main module). Each
  worker gets ``seconds`` of wall time per instance, so give no more workers
  than idle cores.

  Examples:
    >>> import numpy as np
    >>> batch = {"weights": np.full((2, 3), 0.5), "values": np.array([[1, 2, 3], [3, 2, 1.]]),
    ...          "capacity": np.array([1.0, 1.0])}
    >>> solve_batch("kp", batch, seconds=0.1)
    array([5., 5.])
  """
  problems.validate_problem(problem)
  b = problems.batch_size(instances)
  workers = default_workers() if workers is None else int(workers)
  if workers < 1:
    raise UserError(f"workers must be at least 1, got {workers}")
  jobs = [(problem, problems.unbatch(instances, i), float(seconds)) for i in range(b)]
  out = np.empty(b, np.float64)
  if workers == 1 or b <= 1:
    for i, job in enumerate(jobs):
      out[i] = _solve_one(job)
      if progress:
        progress(i + 1, b)
    return out
  methods = multiprocessing.get_all_start_methods()
  ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
  with concurrent.futures.ProcessPoolExecutor(min(workers, b), mp_context=ctx) as pool:
    futures = {pool.submit(_solve_one, job): i for i, job in enumerate(jobs)}
    for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
      out[futures[future]] = future.result()
      if progress:
        progress(done, b)
  return out


def fingerprint(problem: str, instances: Mapping[str, Any], seconds: float) -> str:
  """sha256 of the instances' arrays (names, dtypes, shapes, bytes) and the solver settings."""
  h = hashlib.sha256()
  h.update(f"{problem}|{float(seconds)!r}|{describe(problem, seconds)}|"
           f"ortools {ORTOOLS_VERSION}|mip {MIP_VERSION}|scale {SCALE} {PRIZE_SCALE}".encode())
  for key in sorted(instances):
    a = np.ascontiguousarray(instances[key])
    h.update(f"|{key}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _read_cache(path: str, expected: str, b: int) -> np.ndarray | None:
  """The cached objectives when the file holds ``expected``'s, else None (also when unreadable)."""
  try:
    loaded = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile):
    return None
  if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
    return None
  try:
    with loaded as f:
      if "fingerprint" not in f.files or str(f["fingerprint"]) != expected:
        return None
      values = np.asarray(f["objectives"], np.float64)
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    return None
  return values if values.shape == (b,) and np.isfinite(values).all() else None


def _write_cache(path: str, fp: str, values: np.ndarray, meta: str) -> None:
  """Writes the cache atomically (:func:`tgroup.io.atomic_write_bytes`)."""
  buffer = std_io.BytesIO()
  np.savez(buffer, fingerprint=np.array(fp), objectives=values, solver=np.array(meta))
  io.atomic_write_bytes(path, buffer.getvalue())


def references(path: str, problem: str, instances: Mapping[str, Any], seconds: float,
               workers: int | None = None, progress: ProgressFn | None = None) -> np.ndarray:
  """Reference objectives (B,) of a batch, cached in the ``.npz`` at ``path``.

  The file stores the objectives with :func:`fingerprint`; when it matches they
  are read back without solving. A missing, mismatched or unreadable file is
  recomputed with :func:`solve_batch` and rewritten atomically.

  Examples:
    >>> import numpy as np, os, tempfile
    >>> batch = {"weights": np.full((1, 2), 0.5), "values": np.array([[1., 2.]]),
    ...          "capacity": np.array([0.6])}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...   path = os.path.join(folder, "kp.npz")
    ...   print(references(path, "kp", batch, 1.0), references(path, "kp", batch, 1.0))
    [2.] [2.]
  """
  problems.validate_problem(problem)
  b = problems.batch_size(instances)
  fp = fingerprint(problem, instances, seconds)
  cached = _read_cache(path, fp, b)
  if cached is not None:
    return cached
  start = time.perf_counter()
  values = solve_batch(problem, instances, seconds, workers=workers, progress=progress)
  meta = f"{describe(problem, seconds)}; {b} instances in {time.perf_counter() - start:.1f} s"
  _write_cache(path, fp, values, meta)
  return values
