"""Reference solvers, objectives, checkers and heuristics for TSP, CVRP, OP and KP.

Exactness is checked against brute force on instances small enough to enumerate;
the routing references (time-limited OR-Tools searches) must reach those optima
within 0.05-0.2 s.
"""
import itertools
import math
import os

import numpy as np
import pytest

from tgroup.benchmarks.cop import problems
from tgroup.benchmarks.cop import reference
from tgroup.errors import UserError

SECONDS = 0.1


def make(problem, n, b, seed):
  """Batched instances following the benchmark's distributions (Kool et al.; POMO for KP).

  In NumPy rather than through :func:`tgroup.benchmarks.cop.instances.generate`: the JAX
  generator compiles once per (problem, size, batch), about 1 s each here, and these tests
  use some thirty shapes (measured: 24 s for this file against 6 s).
  """
  rng = np.random.default_rng(seed)
  if problem == "tsp":
    return {"locs": rng.random((b, n, 2), dtype=np.float32)}
  if problem == "cvrp":
    return {"depot": rng.random((b, 2), dtype=np.float32),
            "locs": rng.random((b, n, 2), dtype=np.float32),
            "demand": rng.integers(1, 10, (b, n)).astype(np.int32),
            "capacity": np.full(b, 30, np.int32)}
  if problem == "op":
    depot = rng.random((b, 2), dtype=np.float32)
    locs = rng.random((b, n, 2), dtype=np.float32)
    d = np.linalg.norm(locs - depot[:, None], axis=-1)
    prize = (1 + np.floor(99 * d / d.max(-1, keepdims=True))) / 100
    return {"depot": depot, "locs": locs, "prize": prize.astype(np.float32),
            "max_length": np.full(b, 2.0, np.float32)}
  return {"weights": rng.random((b, n), dtype=np.float32),
          "values": rng.random((b, n), dtype=np.float32),
          "capacity": np.full(b, n / 4, np.float32)}


def one(problem, n, seed=0):
  return problems.unbatch(make(problem, n, 1, seed), 0)


# ---------------------------------------------------------------- brute force


def brute_tsp(inst):
  locs = np.asarray(inst["locs"], np.float64)
  n = len(locs)
  best = math.inf
  for perm in itertools.permutations(range(1, n)):
    best = min(best, problems.objective("tsp", inst, (0,) + perm))
  return best


def brute_kp(inst):
  w = np.asarray(inst["weights"], np.float64)
  v = np.asarray(inst["values"], np.float64)
  n = len(w)
  take = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
  ok = take @ w <= float(inst["capacity"])
  return float((take @ v)[ok].max())


def brute_op(inst):
  n = len(inst["locs"])
  best = 0.0
  for k in range(1, n + 1):
    for subset in itertools.combinations(range(n), k):
      prize = problems.objective("op", inst, list(subset))
      if prize <= best:
        continue
      if any(problems.op_length(inst, list(order)) <= float(inst["max_length"])
             for order in itertools.permutations(subset)):
        best = prize
  return best


def brute_cvrp(inst):
  """Optimal CVRP length: best route per feasible customer set, then the best partition."""
  n = len(inst["locs"])
  demand = np.asarray(inst["demand"])
  route = {}
  for mask in range(1, 2 ** n):
    members = [i for i in range(n) if mask >> i & 1]
    if demand[members].sum() <= int(inst["capacity"]):
      route[mask] = min(problems.objective("cvrp", inst, [list(order)])
                        for order in itertools.permutations(members))
  best = {0: 0.0}
  for mask in range(1, 2 ** n):
    low = mask & -mask  # the route serving the lowest customer, then the rest
    best[mask] = min((route[sub] + best[mask ^ sub] for sub in route
                      if sub & low and sub & mask == sub), default=math.inf)
  return best[2 ** n - 1]


# ---------------------------------------------------------------- checkers


def test_checkers_reject_broken_solutions():
  tsp = one("tsp", 5)
  problems.check("tsp", tsp, [0, 3, 1, 4, 2])
  with pytest.raises(ValueError, match="node 4 0 times"):
    problems.check("tsp", tsp, [0, 3, 1, 2])
  with pytest.raises(ValueError, match="node 1 2 times"):
    problems.check("tsp", tsp, [0, 1, 1, 2, 3, 4])
  with pytest.raises(ValueError, match="outside"):
    problems.check("tsp", tsp, [0, 1, 2, 3, 5])

  cvrp = {"depot": np.zeros(2), "locs": np.ones((4, 2)), "demand": np.array([5, 5, 5, 5]),
          "capacity": np.int32(10)}
  problems.check("cvrp", cvrp, [[0, 1], [3, 2]])
  with pytest.raises(ValueError, match="demand 15 > capacity 10"):
    problems.check("cvrp", cvrp, [[0, 1, 2], [3]])
  with pytest.raises(ValueError, match="customer 3 is served 0 times"):
    problems.check("cvrp", cvrp, [[0, 1], [2]])
  with pytest.raises(ValueError, match="customer 1 is served 2 times"):
    problems.check("cvrp", cvrp, [[0, 1], [2, 1], [3]])
  with pytest.raises(ValueError, match="route 1 is empty"):
    problems.check("cvrp", cvrp, [[0, 1], [], [2, 3]])
  with pytest.raises(ValueError, match="index 1 2 times"):
    problems.check("cvrp", cvrp, [[0, 1, 1], [2, 3]])

  op = {"depot": np.zeros(2), "locs": np.array([[0.5, 0], [0.5, 0.5], [0, 0.5]]),
        "prize": np.ones(3), "max_length": np.float32(2.0)}
  problems.check("op", op, [0, 1, 2])  # a square of side 0.5: length exactly 2
  problems.check("op", op, [])
  with pytest.raises(ValueError, match="> max_length"):
    problems.check("op", {**op, "max_length": np.float32(1.99)}, [0, 1, 2])
  with pytest.raises(ValueError, match="index 0 2 times"):
    problems.check("op", op, [0, 1, 0])
  with pytest.raises(ValueError, match="outside"):
    problems.check("op", op, [3])

  kp = {"weights": np.array([0.5, 0.3, 0.4]), "values": np.ones(3), "capacity": np.float32(0.8)}
  problems.check("kp", kp, [0, 1])
  with pytest.raises(ValueError, match="weigh"):
    problems.check("kp", kp, [0, 2])
  with pytest.raises(ValueError, match="index 1 2 times"):
    problems.check("kp", kp, [1, 1])
  with pytest.raises(ValueError, match="outside"):
    problems.check("kp", kp, [-1])


def test_objectives_by_hand():
  square = {"locs": np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)}
  assert problems.objective("tsp", square, [0, 2, 1, 3]) == pytest.approx(2 + 2 * math.sqrt(2))
  cvrp = {"depot": np.zeros(2), "locs": np.array([[3.0, 4.0], [0.0, 1.0]]),
          "demand": np.array([1, 1]), "capacity": np.int32(1)}
  assert problems.objective("cvrp", cvrp, [[0], [1]]) == pytest.approx(10 + 2)
  assert problems.objective("cvrp", cvrp, [[1, 0]]) == pytest.approx(1 + math.sqrt(18) + 5)
  op = {"depot": np.zeros(2), "locs": np.ones((3, 2)), "prize": np.array([0.25, 0.5, 0.125]),
        "max_length": np.float32(9.0)}
  assert problems.objective("op", op, [2, 0]) == 0.375
  assert problems.objective("op", op, []) == 0.0
  assert problems.MINIMISE == {"tsp": True, "cvrp": True, "op": False, "kp": False}


def test_bad_input_is_a_user_error():
  with pytest.raises(UserError, match="unknown problem 'vrp'"):
    problems.check("vrp", {}, [])
  with pytest.raises(UserError, match="lacks prize"):
    reference.solve("op", {"depot": np.zeros(2), "locs": np.ones((2, 2)),
                           "max_length": np.float32(1)}, 0.05)
  with pytest.raises(UserError, match="common leading"):
    reference.solve_batch("kp", {"weights": np.ones((2, 3)), "values": np.ones((3, 3)),
                                 "capacity": np.ones(2)}, 0.05)
  with pytest.raises(UserError, match="exceeds capacity"):
    reference.solve("cvrp", {"depot": np.zeros(2), "locs": np.ones((2, 2)),
                             "demand": np.array([3, 12]), "capacity": np.int32(10)}, 0.05)


# ---------------------------------------------------------------- heuristics


@pytest.mark.parametrize("problem", problems.PROBLEMS)
def test_heuristics_are_feasible_and_deterministic(problem):
  for n in (1, 7, 20):
    inst = one(problem, n, seed=n)
    sol = problems.heuristic(problem, inst)
    problems.check(problem, inst, sol)
    assert sol == problems.heuristic(problem, inst)


def test_greedy_op_stops_when_nothing_fits():
  op = {"depot": np.zeros(2), "locs": np.array([[2.0, 0.0]]), "prize": np.ones(1),
        "max_length": np.float32(3.9)}
  assert problems.greedy_op(op) == []
  assert problems.greedy_op({**op, "max_length": np.float32(4.0)}) == [0]


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("problem", problems.PROBLEMS)
def test_references_are_feasible_and_beat_the_heuristic(problem):
  refs, heurs = [], []
  # Greedy by ratio is optimal on most small random knapsacks: KP needs larger ones.
  sizes = (20, 50, 100, 200) if problem == "kp" else (8, 12, 16, 20)
  for k, n in enumerate(sizes):
    inst = one(problem, n, seed=100 + k)
    value, sol = reference.solve(problem, inst, SECONDS)
    problems.check(problem, inst, sol)
    assert value == problems.objective(problem, inst, sol)
    heur = problems.objective(problem, inst, problems.heuristic(problem, inst))
    # Never worse than the trivial heuristic (float slack only).
    if problems.MINIMISE[problem]:
      assert value <= heur + 1e-9, (n, value, heur)
    else:
      assert value >= heur - 1e-9, (n, value, heur)
    refs.append(value)
    heurs.append(heur)
  assert problems.is_better(problem, np.mean(refs), np.mean(heurs)), (refs, heurs)


def test_tsp_reaches_brute_force_optimum():
  for seed in range(3):
    inst = one("tsp", 8, seed)
    value, _ = reference.solve("tsp", inst, 0.05)
    assert value == pytest.approx(brute_tsp(inst), abs=1e-5)


def test_kp_is_exact():
  for seed in range(5):
    inst = one("kp", 12, seed)
    value, sol = reference.solve("kp", inst, 0.05)
    assert value == pytest.approx(brute_kp(inst), abs=1e-6)
    assert sol == sorted(sol)


def test_op_reaches_brute_force_optimum():
  for seed in range(3):
    inst = one("op", 7, seed)
    value, _ = reference.solve("op", inst, 0.1)
    # Prizes are multiples of 0.01: equal optima agree to float rounding.
    assert value == pytest.approx(brute_op(inst), abs=1e-6)


def test_cvrp_reaches_brute_force_optimum():
  for seed in range(3):
    inst = one("cvrp", 6, seed)
    inst["capacity"] = np.int32(12)  # several routes, not one trip for all six
    value, sol = reference.solve("cvrp", inst, 0.1)
    assert len(sol) >= 2
    assert value == pytest.approx(brute_cvrp(inst), abs=1e-5)


def test_op_limit_is_respected_in_float():
  # Node 0 is 0.300004 from the depot: 30000.4 scaled units per arc. Rounded to
  # nearest, depot-0-depot (60000) would fit the limit floor(60000.5); its true
  # length 0.600008 exceeds 0.600005. Rounding up must keep it out.
  op = {"depot": np.zeros(2), "locs": np.array([[0.300004, 0.0], [0.1, 0.0]]),
        "prize": np.array([0.02, 0.01]), "max_length": np.float64(0.600005)}
  value, sol = reference.solve("op", op, 0.05)
  assert sol == [1] and value == pytest.approx(0.01)
  assert problems.op_length(op, sol) <= 0.600005


def test_solve_batch_and_describe(capsys):
  batch = make("tsp", 6, 3, 0)
  values = reference.solve_batch("tsp", batch, 0.05, progress=reference.stderr_progress("tsp6"))
  assert capsys.readouterr().err.splitlines() == [
      f"tsp6: {i}/3 reference solutions" for i in (1, 2, 3)]
  assert values.shape == (3,)
  for i in range(3):
    assert values[i] == pytest.approx(brute_tsp(problems.unbatch(batch, i)), abs=1e-5)
  assert "OR-Tools" in reference.describe("tsp", 0.25) and "0.25 s" in reference.describe("tsp",
                                                                                         0.25)
  assert "exact" in reference.describe("kp", 1.0)


def test_solve_batch_in_processes_matches_serial():
  # JAX is loaded in this process (conftest): the pool must not fork it.
  batch = make("kp", 30, 4, 1)
  seen = []
  serial = reference.solve_batch("kp", batch, 0.05)
  parallel = reference.solve_batch("kp", batch, 0.05, workers=2,
                                   progress=lambda done, total: seen.append((done, total)))
  np.testing.assert_array_equal(serial, parallel)
  assert seen[-1] == (4, 4) and len(seen) == 4


# ---------------------------------------------------------------- cache


def test_references_cache(tmp_path, monkeypatch):
  path = str(tmp_path / "sub" / "kp.npz")
  batch = make("kp", 10, 3, 2)
  calls = []
  real = reference.solve_batch

  def counting(*args, **kw):
    calls.append(args[2])
    return real(*args, **kw)
  monkeypatch.setattr(reference, "solve_batch", counting)

  first = reference.references(path, "kp", batch, 1.0)
  assert len(calls) == 1 and os.path.exists(path)
  np.testing.assert_allclose(first, [brute_kp(problems.unbatch(batch, i)) for i in range(3)])
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["kp.npz"]  # no temp file left

  def fail(*args, **kw):
    raise AssertionError("solved again although the cache matches")
  monkeypatch.setattr(reference, "solve_batch", fail)
  np.testing.assert_array_equal(reference.references(path, "kp", batch, 1.0), first)

  monkeypatch.setattr(reference, "solve_batch", counting)
  reference.references(path, "kp", batch, 2.0)  # other seconds: recomputed
  assert calls == [1.0, 2.0]
  changed = {**batch, "values": batch["values"].copy()}
  changed["values"][1, 0] += 0.5
  again = reference.references(path, "kp", changed, 2.0)  # other instances: recomputed
  assert len(calls) == 3 and again[0] == first[0]
  reference.references(path, "kp", changed, 2.0)
  assert len(calls) == 3  # and that result was cached

  for junk in (b"not an npz", b"PK\x03\x04 truncated zip"):
    with open(path, "wb") as f:
      f.write(junk)
    np.testing.assert_array_equal(reference.references(path, "kp", changed, 2.0), again)
  assert len(calls) == 5
  np.savez(path, something_else=np.ones(3))  # readable, wrong contents
  reference.references(path, "kp", changed, 2.0)
  assert len(calls) == 6
  with open(path, "wb") as f:  # a bare .npy array under the cache's name
    np.save(f, again)
  reference.references(path, "kp", changed, 2.0)
  assert len(calls) == 7
  reference.references(path, "kp", changed, 2.0)
  assert len(calls) == 7


def test_fingerprint_covers_problem_dtype_and_settings():
  batch = make("kp", 5, 2, 0)
  fp = reference.fingerprint("kp", batch, 1.0)
  assert fp == reference.fingerprint("kp", {k: v.copy() for k, v in batch.items()}, 1.0)
  assert fp != reference.fingerprint("kp", batch, 1.5)
  assert fp != reference.fingerprint("kp", {**batch, "weights": batch["weights"].astype(
      np.float64)}, 1.0)
  tsp = make("tsp", 5, 2, 0)
  assert reference.fingerprint("tsp", tsp, 1.0) != reference.fingerprint(
      "tsp", {"locs": tsp["locs"][:, ::-1]}, 1.0)
