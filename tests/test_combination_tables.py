"""Selection from combination tables (launch.select --combinations) against brute force.

The brute force here enumerates set partitions and per-task choices of serving row
directly from the definitions (tests/brute_force_grouping.py's enumerators, no code of
tgroup.grouping), on random seeded tables of 3 to 6 tasks, with every subset and
sparse, for both score kinds; then the launcher's contract: its output, its JSON and
its one-line errors.
"""
import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import brute_force_grouping as bf
from launch import select as select_launcher
from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.combination_table import CombinationTable
from tgroup.grouping.combination_table import read_combination_table
from tgroup.grouping.combination_table import read_test_scores
from tgroup.grouping.combination_table import select_combinations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join("tests", "data", "combination_tables")
COMBINATIONS = os.path.join(DATA, "combinations.txt")
GAINS = os.path.join(DATA, "gains.txt")
GAINS_TEST = os.path.join(DATA, "gains_test.txt")


def random_table(m, kind, sparse, seed):
  """(masks, scores, test scores) of a random table; rows in random order.

  Gains are normal around 0 (singletons exactly 0); losses uniform in [0.1, 2).
  Sparse: each subset kept with probability 0.4 (so singletons go missing too).
  """
  rng = np.random.default_rng(seed)
  subsets = [g for k in range(1, m + 1) for g in itertools.combinations(range(m), k)]
  if sparse:
    subsets = [g for g in subsets if rng.random() < 0.4] or [tuple(range(m))]
  subsets = [subsets[i] for i in rng.permutation(len(subsets))]
  masks = np.zeros((len(subsets), m), dtype=bool)
  for r, g in enumerate(subsets):
    masks[r, list(g)] = True

  def draw():
    values = rng.normal(size=masks.shape) if kind == "gain" else rng.uniform(0.1, 2, masks.shape)
    values[~masks] = 0
    if kind == "gain":
      values[masks.sum(axis=1) == 1] = 0
    return values

  return masks, draw(), draw()


def candidates(masks, scores, test, kind):
  """Every group that may be chosen: (tasks, scores, test scores); a gain table's
  absent singletons are implied with gain 0."""
  out = {tuple(np.flatnonzero(mask)): (scores[r], test[r]) for r, mask in enumerate(masks)}
  if kind == "gain":
    for t in range(masks.shape[1]):
      out.setdefault((t,), (np.zeros(masks.shape[1]), np.zeros(masks.shape[1])))
  return out


def count_ok(k, num_groups, max_groups):
  return (num_groups is None or k == num_groups) and (max_groups is None or k <= max_groups)


def brute_partitions(groups, m, sign):
  """Every partition of the tasks into candidate groups: [(value, blocks)], value
  = sign * summed scores (so higher is better)."""
  out = []
  for partition in bf.set_partitions(list(range(m))):
    blocks = [tuple(b) for b in partition]
    if all(b in groups for b in blocks):
      value = sum(sign * groups[b][0][t] for b in blocks for t in b)
      out.append((value, sorted(blocks)))
  return out


class Covers:
  """Every way for each task to pick a candidate group holding it (a cover whose
  chosen groups are exactly the picked ones), enumerated with NumPy broadcasting."""

  def __init__(self, groups, m, sign):
    self.keys = list(groups)
    options = [[(c, sign * groups[g][0][t]) for c, g in enumerate(self.keys) if t in g]
               for t in range(m)]
    self.total, self.picked, first = bf._every_service(options)  # pylint: disable=protected-access
    self.distinct = sum(f.astype(np.int64) for f in first)

  def best(self, num_groups, max_groups):
    ok = np.ones(self.total.shape, bool)
    if num_groups is not None:
      ok &= self.distinct == num_groups
    if max_groups is not None:
      ok &= self.distinct <= max_groups
    if not ok.any():
      return None
    index = np.unravel_index(np.argmax(np.where(ok, self.total, -np.inf)), self.total.shape)
    serving = [self.keys[np.broadcast_to(p, self.total.shape)[index]] for p in self.picked]
    return float(self.total[index]), serving


def requests(m):
  yield None, None
  for k in range(1, m + 1):
    yield k, None
  for k in range(1, m):
    yield None, k


def check_against_brute_force(m, kind, sparse, overlap, seed):
  masks, scores, test = random_table(m, kind, sparse, seed)
  table = CombinationTable(masks, scores, kind)
  groups = candidates(masks, scores, test, kind)
  sign = 1.0 if kind == "gain" else -1.0
  if overlap:
    covers = Covers(groups, m, sign) if all(any(t in g for g in groups) for t in range(m)) else None
  else:
    partitions = brute_partitions(groups, m, sign)
  checked = 0
  for num_groups, max_groups in requests(m):
    if overlap:
      best = covers and covers.best(num_groups, max_groups)
    else:
      feasible = [p for p in partitions if count_ok(len(p[1]), num_groups, max_groups)]
      best = None
      if feasible:
        value, blocks = max(feasible, key=lambda p: p[0])
        best = value, [next(b for b in blocks if t in b) for t in range(m)]
    if best is None:
      with pytest.raises(InfeasibleError):
        select_combinations(table, num_groups, max_groups, overlap, test)
      continue
    value, serving = best
    result = select_combinations(table, num_groups, max_groups, overlap, test)
    chosen = [tuple(g["tasks"]) for g in result["groups"]]
    assert result["total"] == pytest.approx(sign * value, abs=1e-9)
    # Continuous random scores: the optimum is unique, so the choice itself must match.
    assert sorted(set(serving)) == chosen, (num_groups, max_groups)
    assert [chosen[k] for k in result["assignment"]] == serving
    assert result["test_total"] == pytest.approx(
        math.fsum(groups[g][1][t] for t, g in enumerate(serving)), abs=1e-12)
    for group in result["groups"]:
      row = group["row"]
      if row is None:  # an implied singleton: only gains, only where the table lacks it
        assert kind == "gain" and len(group["tasks"]) == 1
        assert not any(tuple(np.flatnonzero(mask)) == tuple(group["tasks"]) for mask in masks)
      else:
        assert list(np.flatnonzero(masks[row])) == group["tasks"]
      assert group["serves"] == [t for t, g in enumerate(serving) if g == tuple(group["tasks"])]
    assert result["status"] == "optimal"
    checked += 1
  return checked


@pytest.mark.parametrize("kind", ["gain", "loss"])
@pytest.mark.parametrize("m", [3, 4, 5, 6])
@pytest.mark.parametrize("sparse", [False, True], ids=["every_subset", "sparse"])
def test_partitions_equal_brute_force(m, kind, sparse):
  checked = sum(check_against_brute_force(m, kind, sparse, False, seed=100 * m + s)
                for s in range(2 if sparse else 1))
  assert checked >= (1 if sparse else 2 * m)  # every request of a full table is feasible


@pytest.mark.parametrize("kind", ["gain", "loss"])
@pytest.mark.parametrize("m, sparse", [(3, False), (4, False), (5, False), (3, True),
                                       (4, True), (5, True), (6, True)])
def test_covers_equal_brute_force(m, kind, sparse):
  # Every subset of 6 tasks is 32 rows per task, 32^6 choices: too many to enumerate.
  checked = sum(check_against_brute_force(m, kind, sparse, True, seed=100 * m + s)
                for s in range(2 if sparse else 1))
  assert checked >= 1


def test_a_gain_table_implies_its_missing_singletons():
  masks = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
  gains = np.array([[-0.1, -0.2, -0.3, 0.4], [0.5, -0.2, 0, 0]])
  table = CombinationTable(masks, gains, "gain")
  result = select_combinations(table, test_scores=gains / 2)
  # {0, 1} (gain 0.3) plus the implied {2} and {3} beat the full row (-0.2).
  assert [(g["tasks"], g["row"]) for g in result["groups"]] == [([0, 1], 1), ([2], None),
                                                               ([3], None)]
  assert result["total"] == pytest.approx(0.3)
  assert result["test_total"] == pytest.approx(0.15)
  alone = select_combinations(table, num_groups=4)
  assert [g["row"] for g in alone["groups"]] == [None] * 4 and alone["total"] == 0
  # As losses, the same rows hold no singleton: a partition into 4 is impossible.
  with pytest.raises(InfeasibleError, match=r"lacks the singleton rows \{0\}, \{1\}, \{2\}, "
                     r"\{3\}"):
    select_combinations(CombinationTable(masks, np.abs(gains) + masks, "loss"), num_groups=4)


def test_a_singletons_gain_must_be_zero():
  masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
  with pytest.raises(UserError, match=r"<scores>:2: the singleton \{1\} has gain 0.1"):
    CombinationTable(masks, [[0, 0], [0, 0.1], [0.2, 0.3]], "gain")
  # The same numbers are fine as losses.
  CombinationTable(masks, [[0.5, 0], [0, 0.1], [0.2, 0.3]], "loss")


def test_the_example_files(tmp_path):
  table = read_combination_table(os.path.join(ROOT, COMBINATIONS), os.path.join(ROOT, GAINS),
                                 "gain")
  assert table.masks.shape == (15, 4)  # every non-empty subset of 4 tasks, once
  assert len({tuple(mask) for mask in table.masks}) == 15
  test = read_test_scores(os.path.join(ROOT, GAINS_TEST), table)
  assert test.shape == table.scores.shape and (test[~table.masks] == 0).all()


# The launcher.

def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.select", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def test_the_docstring_example_prints_what_it_says():
  doc = select_launcher.__doc__
  start = doc.index("  python -m launch.select --combinations")
  command = doc[start:doc.index("\n\nprints", start)].replace("\\\n", " ").split()
  shown = doc[doc.index("prints\n\n", start) + len("prints\n\n"):doc.index("\n\n(row r", start)]
  proc = launch(*command[3:])
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == textwrap.dedent(shown) + "\n"


def test_writes_the_selection(tmp_path):
  out = tmp_path / "sub" / "selection.json"
  proc = launch(f"--combinations={COMBINATIONS}", f"--scores={GAINS}", "--score_kind=gain",
                f"--test_scores={GAINS_TEST}", "--max_groups=2", f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(out.read_text())
  assert set(result) == {"groups", "assignment", "total", "test_total", "status", "score_kind",
                         "overlap", "num_groups", "max_groups", "combinations", "scores",
                         "test_scores"}
  assert (result["combinations"], result["scores"], result["test_scores"]) == (
      COMBINATIONS, GAINS, GAINS_TEST)
  assert (result["score_kind"], result["overlap"], result["num_groups"],
          result["max_groups"], result["status"]) == ("gain", False, None, 2, "optimal")
  # The brute force over the files, read here from their definition.
  masks = np.loadtxt(os.path.join(ROOT, COMBINATIONS), dtype=int).astype(bool)
  gains = np.loadtxt(os.path.join(ROOT, GAINS))
  test = np.loadtxt(os.path.join(ROOT, GAINS_TEST))
  groups = candidates(masks, gains, test, "gain")
  value, blocks = max((p for p in brute_partitions(groups, 4, 1.0) if len(p[1]) <= 2),
                      key=lambda p: p[0])
  assert [g["tasks"] for g in result["groups"]] == [list(b) for b in blocks]
  assert result["total"] == pytest.approx(value, abs=1e-12)
  assert result["test_total"] == pytest.approx(
      sum(test[g["row"], t] for g in result["groups"] for t in g["serves"]), abs=1e-12)
  for g in result["groups"]:
    assert list(np.flatnonzero(masks[g["row"]])) == g["tasks"]
    assert g["total"] == pytest.approx(sum(gains[g["row"], t] for t in g["serves"]))
    assert "{" + ", ".join(map(str, g["tasks"])) + "}" in proc.stdout
  assert f"total gain {result['total']:.5f}" in proc.stdout
  assert f"test total gain {result['test_total']:.5f}" in proc.stdout
  assert f"wrote {out}" in proc.stdout


def test_quiet_prints_the_json_without_output():
  proc = launch(f"--combinations={COMBINATIONS}", f"--scores={GAINS}", "--score_kind=loss",
                "--num_groups=4", "--quiet")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  # As losses, the four zero singleton rows are the cheapest partition into 4.
  assert [(g["tasks"], g["row"]) for g in result["groups"]] == [([t], t) for t in range(4)]
  assert result["total"] == 0 and result["test_total"] is None


def write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


GOOD_MASKS = "1 0 0\n0 1 0\n0 0 1\n1 1 0\n"
GOOD_GAINS = "0 0 0\n0 0 0\n0 0 0\n0.1 0.2 0\n"
BOTH = ["--combinations={c}", "--scores={s}"]
GAIN = BOTH + ["--score_kind=gain"]
LOSS = BOTH + ["--score_kind=loss"]

# (files to write, flags, words the error line holds); {name} in a flag is that file's path,
# and the line is compared with the temporary folder's path taken out.
ERRORS = [
    ({}, ["--combinations=no_such.txt", "--scores=no_such_either.txt", "--score_kind=gain"],
     "no_such.txt: no such file"),
    ({"c": GOOD_MASKS}, ["--combinations={c}", "--scores=no_such.txt", "--score_kind=gain"],
     "no_such.txt: no such file"),
    ({"c": "1 0 0\n0 1\n", "s": "0 0 0\n0 0\n"}, GAIN, "c:2: 2 columns, expected 3"),
    ({"c": "1 0 0\n0 1 2\n", "s": "0 0 0\n0 0 0\n"}, GAIN,
     "c:2: column 3 (task 2) is '2', not 0 or 1"),
    ({"c": "1 0 0\n0 1 0.5\n", "s": "0 0 0\n0 0 0\n"}, GAIN, "is '0.5', not 0 or 1"),
    ({"c": GOOD_MASKS, "s": "0 0 0\n0 0 0\n0 0 0\n0.1 abc 0\n"}, GAIN,
     "s:4: column 2 (task 1): 'abc' is not a number"),
    ({"c": GOOD_MASKS, "s": "0 0 0\n0 0 0\n0 0 0\n0.1 nan 0\n"}, GAIN, "'nan' is not finite"),
    ({"c": GOOD_MASKS, "s": "0 0 0\n0 0 0\n0 0 0\n0.1 0.2 0.3\n"}, LOSS,
     "s:4: task 2 scores 0.3 but is not in the row's group {0, 1}; a non-member scores 0"),
    ({"c": GOOD_MASKS, "s": "0 0 0\n0 0 0\n0.1 0.2 0\n"}, GAIN, "s has 3 rows but c has 4"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS, "t": "0 0 0\n0 0 0\n0 0 0\n"},
     GAIN + ["--test_scores={t}"], "t has 3 rows but c has 4"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS, "t": "0 0\n0 0\n0 0\n0.1 0.2\n"},
     GAIN + ["--test_scores={t}"], "t:1: 2 columns, expected 3"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS, "t": "0 0 0\n0 0 0\n0 0 0\n0.1 0.2 0.3\n"},
     GAIN + ["--test_scores={t}"], "t:4: task 2 scores 0.3 but is not in the row's group"),
    ({"c": GOOD_MASKS, "s": "0 0 0\n0 0.3 0\n0 0 0\n0.1 0.2 0\n"}, GAIN,
     "s:2: the singleton {1} has gain 0.3", "--score_kind=loss"),
    ({"c": GOOD_MASKS + "0 1 0\n", "s": GOOD_GAINS + "0 0 0\n"}, GAIN,
     "c:5: repeats the group {1} of line 2"),
    ({"c": "1 0 0\n0 0 0\n", "s": "0 0 0\n0 0 0\n"}, GAIN, "c:2: the mask has no 1"),
    ({"c": "1 0 0\n\n0 1 0\n", "s": "0 0 0\n0 0 0\n"}, GAIN, "c:2: blank line"),
    ({"c": "", "s": ""}, GAIN, "c: empty"),
    # Requests the rows cannot satisfy.
    ({"c": "1 1 0\n0 1 1\n", "s": "1 2 0\n0 3 4\n"}, LOSS,
     "c: no rows partition the 3 tasks", "lacks the singleton rows {0}, {1}, {2}"),
    ({"c": "1 1 0\n0 1 0\n", "s": "1 2 0\n0 3 0\n"}, LOSS + ["--overlap"],
     "c: task 2 is in no row"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--num_groups=4"],
     "c: no partition of the 3 tasks into exactly 4 rows; its rows allow partitions into 2 or "
     "3 rows"),
    ({"c": "1 0 0\n0 1 1\n1 1 1\n", "s": "1 0 0\n0 1 1\n1 1 1\n"}, LOSS + ["--num_groups=3"],
     "partitions into 1 or 2 rows; the table lacks the singleton rows {1}, {2}"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--overlap", "--max_groups=1"],
     "c: no cover of the 3 tasks into at most 1 row; its rows allow covers into 2 or 3 rows"),
    # The two modes and the flags.
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--table=t.tsv"],
     "--table and --combinations are two modes"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--budget=2"], "--budget belongs to --table"),
    ({}, ["--table=t.tsv", "--overlap"], "--overlap belongs to --combinations, not to --table"),
    ({}, [], "--table is required", "or --combinations"),
    ({}, ["--scores=s.txt"], "--scores needs --combinations"),
    ({"c": GOOD_MASKS}, ["--combinations={c}"], "--scores is required with --combinations"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, BOTH, "--score_kind is required"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, BOTH + ["--score_kind=gains"],
     "flag --score_kind=gains"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--num_groups=-1"], "--num_groups must be >= 0"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--max_groups=0"], "--max_groups must be >= 1"),
    ({"c": GOOD_MASKS, "s": GOOD_GAINS}, GAIN + ["--num_groups=3", "--max_groups=2"],
     "--num_groups=3 exceeds --max_groups=2"),
]


@pytest.mark.parametrize("files, args, words", [(f, a, w) for f, a, *w in ERRORS])
def test_user_errors_exit_2_with_one_line(tmp_path, files, args, words):
  paths = {name: str(tmp_path / name) for name in files}
  for name, text in files.items():
    (tmp_path / name).write_text(text)
  proc = launch(*[a.format(**paths) for a in args])
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  line = lines[0].replace(f"{tmp_path}{os.sep}", "")
  for word in words:
    assert word in line, (word, line)
  assert "Traceback" not in proc.stderr and not proc.stdout


def test_helpshort_lists_the_new_flags():
  proc = launch("--helpshort")
  for name in ("combinations", "scores", "test_scores", "score_kind", "num_groups",
               "max_groups", "overlap"):
    assert f"--{name}" in proc.stdout or f"--[no]{name}" in proc.stdout, name
  assert "singleton rows the table lacks are implied" in proc.stdout
