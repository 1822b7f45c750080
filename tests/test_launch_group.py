"""launch.group: grouping from a saved gains file, run as a user would run it.

Every test starts ``python -m launch.group`` in a subprocess from the repo root,
so flag parsing, exit codes and what reaches stdout/stderr are all covered.
"""
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brute_force_grouping as bf
from tgroup.grouping import Constraints
from tgroup.grouping import Grouping

ROOT = Path(__file__).resolve().parents[1]
CELEBA = ROOT / "tests" / "data" / "celeba_tag_affinity.json"


def run_group(*args, check=True):
  """Runs the launcher; with `check`, fails the test on a non-zero exit."""
  proc = subprocess.run([sys.executable, "-m", "launch.group", *map(str, args)],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  if check:
    assert proc.returncode == 0, proc.stderr
  return proc


def tag_cover_exactly(gains, k_max):
  """TAG's cover objective with exactly k groups, for k = 1..k_max, by enumeration.

  The tasks one chosen group serves form a block, so a cover with exactly k
  groups is a partition of the tasks into k blocks, each block served by its own
  group (k distinct groups of >= 2 tasks, each containing its block; a group
  serving nobody is not counted, as in tgroup's MIP). Only each block's k best
  groups matter: if a block's choice lies outside its top k, one of those k is
  unused by the other k - 1 blocks and scores at least as much.

  Returns:
    ``{k: best objective}``; k is absent when no cover has exactly k groups.
  """
  m = len(gains)
  groups = [mask for mask in range(1, 2**m) if bin(mask).count("1") >= 2]
  members = {g: [t for t in range(m) if g >> t & 1] for g in groups}
  score = {g: {t: np.mean([gains[b][t] for b in members[g] if b != t])
               for t in members[g]} for g in groups}
  top = {}
  for block in range(1, 2**m):
    served = [t for t in range(m) if block >> t & 1]
    values = sorted(((sum(score[g][t] for t in served), g) for g in groups
                     if g & block == block), reverse=True)
    top[block] = values[:k_max]
  best = {}
  for partition in bf.set_partitions(list(range(m))):
    k = len(partition)
    if k > k_max:
      continue
    options = [top[sum(1 << t for t in b)][:k] for b in partition]
    if sum(o[0][0] for o in options) <= best.get(k, -np.inf):
      continue  # Not even the unconstrained choice beats the best so far.
    for choice in itertools.product(*options):
      if len({g for _, g in choice}) == k:
        best[k] = max(best.get(k, -np.inf), sum(v for v, _ in choice))
  return best


def test_exact_count_enumeration_matches_the_reference():
  # The enumeration above is checked against the plain who-serves-whom one on
  # small random problems, so the CelebA comparison rests on two references.
  rng = np.random.default_rng(0)
  tasks = list("abcde")
  for _ in range(5):
    gains = rng.normal(size=(5, 5))
    ours = tag_cover_exactly(gains.tolist(), 4)
    for k in (1, 2, 3, 4):
      reference = bf.best_cover(tasks, gains, "tag", Constraints(num_groups=k))
      if reference is None:
        assert k not in ours
      else:
        assert ours[k] == pytest.approx(reference, rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def celeba():
  data = json.loads(CELEBA.read_text())
  return tuple(data["tasks"]), np.array(data["gains"], dtype=float)


@pytest.fixture(scope="module")
def celeba_exact(celeba):
  return tag_cover_exactly(celeba[1].tolist(), 4)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_celeba_tag_selection_is_optimal(tmp_path, celeba, celeba_exact, k):
  tasks, gains = celeba
  at_most = bf.best_cover_by_blocks(tasks, gains, "tag", Constraints(max_groups=k))
  # Exactly k and at most k groups reach the same optimum on these affinities.
  assert celeba_exact[k] == pytest.approx(at_most, rel=1e-12)
  for flag, constraints in ((f"--num_groups={k}", Constraints(num_groups=k)),
                            (f"--max_groups={k}", Constraints(max_groups=k))):
    out = tmp_path / f"groups_{flag[2:5]}.json"
    proc = run_group(f"--gains={CELEBA}", "--objective=tag", "--overlap", flag,
                     f"--output={out}")
    written = json.loads(out.read_text())
    assert written["status"] == "optimal"
    assert written["candidates"] == "all"
    assert written["objective"] == pytest.approx(celeba_exact[k], rel=1e-12)
    assert set(written) >= {"tasks", "groups", "objective", "status", "constraints"}
    bf.verify_grouping(Grouping.from_json(written), gains, "tag", constraints,
                       overlap=True)
    mean = written["objective"] / len(tasks)
    assert f"{mean:.6f}" in proc.stdout  # TAG's notebooks report the mean.


def test_principled_on_a_small_gains_file(tmp_path):
  tasks = ["a", "b", "c", "d"]
  # Two clear pairs: a<->b and c<->d help each other, everything else hurts.
  gains = [[1.0, 0.8, -0.5, -0.4],
           [0.9, 1.2, -0.3, -0.6],
           [-0.2, -0.7, 0.5, 0.6],
           [-0.8, -0.1, 0.7, 0.9]]
  path = tmp_path / "gains.json"
  path.write_text(json.dumps({"tasks": tasks, "measure": "principled", "gains": gains,
                              "counts": [[3] * 4] * 4, "settings": {"steps": 3}}))
  out = tmp_path / "out" / "groups.json"
  proc = run_group(f"--gains={path}", "--num_groups=2", f"--output={out}")
  written = json.loads(out.read_text())
  assert written["groups"] == [["a", "b"], ["c", "d"]]
  expected = bf.best_partition(tasks, gains, "principled", Constraints(num_groups=2))
  assert written["objective"] == pytest.approx(expected, abs=1e-12)
  assert written["objective"] == pytest.approx((1.0 + 0.9 + 0.8 + 1.2 + 0.5 + 0.7
                                                + 0.6 + 0.9) / 2, abs=1e-12)
  assert written["constraints"]["num_groups"] == 2
  assert written["status"] == "optimal"
  assert "a, b" in proc.stdout and "c, d" in proc.stdout
  assert "WARNING" not in proc.stderr and not proc.stderr.startswith("W")


def test_measure_mismatch_warns_but_runs(tmp_path):
  path = tmp_path / "gains.json"
  path.write_text(json.dumps({"tasks": ["a", "b"], "measure": "tag",
                              "gains": [[0.0, 1.0], [1.0, 0.0]]}))
  proc = run_group(f"--gains={path}", "--max_groups=1")
  assert "made for --objective=tag, not principled" in proc.stderr
  assert "group 1: a, b" in proc.stdout


def test_uncollected_entries_warn(tmp_path):
  path = tmp_path / "gains.json"
  # The marginal form never collects the diagonal: harmless for --objective=marginal.
  path.write_text(json.dumps({"tasks": ["a", "b"], "measure": "principled_marginal",
                              "gains": [[0.0, 1.0], [1.0, 0.0]],
                              "counts": [[0, 4], [4, 0]]}))
  assert "never collected" not in run_group(f"--gains={path}", "--objective=marginal").stderr
  proc = run_group(f"--gains={path}", "--num_groups=1")
  assert "2 gain entries the principled objective uses were never collected" in proc.stderr


def test_quiet_without_output_prints_the_json(tmp_path):
  path = tmp_path / "gains.json"
  path.write_text(json.dumps({"tasks": ["a", "b", "c"], "measure": "principled_marginal",
                              "gains": [[0, 1, -1], [1, 0, -1], [-1, -1, 0]]}))
  proc = run_group(f"--gains={path}", "--objective=marginal", "--quiet")
  written = json.loads(proc.stdout)
  assert written["groups"] == [["a", "b"], ["c"]]
  assert written["objective"] == 1.0
  assert proc.stderr == ""


def _write(tmp_path, text):
  path = tmp_path / "gains.json"
  path.write_text(text)
  return f"--gains={path}"


ERRORS = {
    "bad_json": (lambda p: [_write(p, '{"tasks": ["a", "b"],\n "gains": [[1, 2],\n [3 4]]}'),
                            "--objective=marginal"], "gains.json:3: not valid JSON"),
    "not_square": (lambda p: [_write(p, '{"tasks": ["a", "b"], "gains": [[1, 2, 3], [4, 5, 6]]}'),
                              "--objective=marginal"], "must be 2x2: row 0 has 3 entries"),
    "nan_gain": (lambda p: [_write(p, '{"tasks": ["a", "b"], "gains": [[1, NaN], [3, 4]]}'),
                            "--objective=marginal"], "gains[0][1] (a -> b) is not finite"),
    "unknown_must_link": (lambda p: [f"--gains={CELEBA}", "--objective=tag",
                                     "--must_link=Goatee:Beard"],
                          "must_link names unknown task 'Beard'"),
    "missing_gains": (lambda p: ["--objective=tag"], "--gains is required"),
    "principled_free": (lambda p: [f"--gains={CELEBA}"],
                        "--objective=principled needs --num_groups or --max_groups"),
    "infeasible": (lambda p: [f"--gains={CELEBA}", "--objective=tag", "--overlap",
                              "--alone=Goatee"], "no grouping satisfies the constraints"),
    "bool_gain": (lambda p: [_write(p, '{"tasks": ["a", "b"], "gains": [[true, 1], [1, 1]]}'),
                             "--objective=marginal"], "gains[0][0] is true, not a number"),
    "overflow": (lambda p: [_write(p, '{"tasks": ["a", "b"], "gains": [[1e308, 1], [1, 1]]}'),
                            "--objective=marginal"], "overflow float64"),
    "hoa_table": (lambda p: [_write(p, '{"tasks": ["a"], "table": [[1]]}'), "--objective=tag"],
                  "no 'gains' matrix"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_user_errors_are_one_line(tmp_path, case):
  make_args, message = ERRORS[case]
  out = tmp_path / "groups.json"
  out.write_text("earlier result\n")
  proc = run_group(*make_args(tmp_path), f"--output={out}", check=False)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, proc.stderr
  assert proc.stderr.splitlines()[-1] == errors[0]
  assert message in errors[0]
  assert proc.stdout == ""
  assert out.read_text() == "earlier result\n"  # An error leaves earlier results intact.


def test_helpshort_lists_every_flag():
  proc = run_group("--helpshort", check=False)  # absl's help exits with status 1
  for name in ("gains", "objective", "overlap", "output", "quiet", "num_groups",
               "max_groups", "min_group_size", "max_group_size", "must_link",
               "cannot_link", "alone"):
    assert f"--{name}:" in proc.stdout or f"--[no]{name}:" in proc.stdout, name


def test_importing_launch_group_does_not_import_jax():
  probe = "import json, sys, launch.group; print(json.dumps(sorted(sys.modules)))"
  out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  modules = json.loads(out.strip().splitlines()[-1])
  heavy = [m for m in modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "chex")]
  assert not heavy, heavy
  assert "tgroup.gains.collect" not in modules  # the JAX side of tgroup.gains
