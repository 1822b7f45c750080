"""Every mistake a user can make: one line ``error: ...``, exit status 2, results intact.

Each case in :data:`CASES` runs a real launcher (``python -m launch.<name>``) in
its own process on a bad input, all cases at once on a small pool (they spend
their time importing JAX, not computing); one test per case then checks its exit
status, that stderr is exactly one line ``error: ...`` holding the case's key
words (task name, file and line, constraint name), and no traceback. The JAX
launchers run on a workdir holding earlier results, which must come out
byte-for-byte unchanged. Library-level checks (readers, TaskSet) run in-process.

``/tmp/errors_table.py`` (outside the repository) imports :data:`CASES` and
:func:`run_cases` to print the table of messages for the issue's closing note.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from launch import cli
from tgroup import data as data_lib
from tgroup import io
from tgroup.benchmarks import synthetic
from tgroup.errors import UserError
from tgroup.gains import Gains

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 2 clusters x 2 tasks: c0_t0, c0_t1, c1_t0, c1_t1; nothing here gets to train.
TINY = ("--num_clusters=2", "--tasks_per_cluster=2", "--max_steps=2", "--quiet",
        "--workdir=earlier")
GAINS = {"tasks": ["a", "b", "c"], "measure": "principled",
         "gains": [[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]],
         "counts": [[5, 5, 5], [5, 5, 5], [5, 5, 5]]}


def _gains_text(**changes) -> str:
  return json.dumps({**GAINS, **changes}, indent=1)


# Bad (and good) input files, written under inputs/ of the directory the cases run in.
INPUTS = {
    "good.json": _gains_text(),
    "truncated.json": _gains_text()[:-40],
    "wrong_keys.json": json.dumps({"names": ["a", "b"], "matrix": [[1, 2], [3, 4]]}, indent=1),
    "not_square.json": _gains_text(gains=[[1.0, 0.1, 0.2], [0.1, 1.0], [0.2, 0.3, 1.0]]),
    "nan_gain.json": _gains_text().replace("0.3,", "NaN,", 1),
    "inf_gain.json": _gains_text().replace("0.2\n", "Infinity\n", 1),
    "negative_count.json": _gains_text(counts=[[5, 5, 5], [5, 5, -1], [5, 5, 5]]),
    "good.tsv": "0.5\t0.6\t0.4\n0.3\t0.7\t\n\t0.5\t0.35\n",
    "ragged.tsv": "0.5\t0.6\t0.4\n0.3\t0.7\n",
    "not_a_number.tsv": "0.5\t0.6\t0.4\n0.3\t0.7\t\n\tx0.5\t0.35\n",
    "empty.tsv": "",
    "negative.tsv": "0.5\t0.6\t0.4\n0.3\t-0.7\t\n",
    "not_a_report/report.json": '{"benchmark": "synthetic"}\n',
    "a_file": "not a directory\n",
}


@dataclasses.dataclass(frozen=True)
class Case:
  """One bad input: the launcher, its arguments, the words its error line must hold."""
  name: str
  module: str
  args: tuple[str, ...]
  words: tuple[str, ...]


def _syn(name, args, *words):
  return Case(name, "launch.synthetic", (*TINY, *args), words)


def _group(name, args, *words):
  return Case(name, "launch.group", (*args, "--output=earlier/groups_out.json"), words)


def _select(name, args, *words):
  return Case(name, "launch.select", (*args, "--output=earlier/select_out.json"), words)


CASES = [
    # Unknown task names, for every launcher that has tasks: the valid ones are listed.
    Case("digits_unknown_task", "launch.digits", ("--tasks=even,odd", "--quiet",
                                                 "--workdir=earlier"),
         ("['odd']", "valid tasks: gt2, gt3")),
    Case("qm9_unknown_task", "launch.qm9", ("--tasks=U0,energy", "--quiet", "--workdir=earlier"),
         ("['energy']", "valid tasks: mu, alpha")),
    Case("celeba_unknown_task", "launch.celeba", ("--tasks=Male,Nope", "--quiet",
                                                 "--workdir=earlier", "--data_dir=nowhere"),
         ("['Nope']", "valid: 5_o_Clock_Shadow")),
    _syn("synthetic_unknown_task_in_must_link", ("--must_link=c0_t0:zz",),
         "must_link", "'zz'", "valid tasks: c0_t0, c0_t1, c1_t0, c1_t1"),
    _syn("synthetic_unknown_task_in_alone", ("--alone=c9_t9",), "alone", "'c9_t9'",
         "valid tasks: c0_t0"),
    _group("group_unknown_task", ("--gains=inputs/good.json", "--num_groups=2",
                                  "--cannot_link=a:zz"), "cannot_link", "'zz'", "valid tasks: a, b, c"),
    # Invalid flag values.
    _syn("mesh_unknown_axis", ("--mesh=model:2",), "--mesh=model:2", "unknown axis 'model'"),
    _syn("mesh_repeated_axis", ("--mesh=data:1,data:1",), "repeats the axis 'data'"),
    _syn("mesh_size_not_the_devices", ("--mesh=data:2",), "--mesh=data:2 spans 2 devices",
         "has 1 (1 cpu device)"),
    _syn("batch_not_divisible_by_data", ("--mesh=data:3",), "batch size 256", "data axis of 3"),
    _syn("distributed_without_coordinator", ("--distributed",), "--distributed",
         "--coordinator_address"),
    _syn("process_id_out_of_range", ("--distributed", "--coordinator_address=127.0.0.1:9",
                                     "--num_processes=2", "--process_id=2"),
         "--process_id=2 is out of range", "0 to 1"),
    _syn("coordinator_not_answering", ("--distributed", "--coordinator_address=127.0.0.1:9",
                                       "--num_processes=2", "--process_id=1",
                                       "--initialization_timeout=1"),
         "nothing answered at --coordinator_address=127.0.0.1:9 within 1 s"),
    _syn("coordinator_not_host_port", ("--distributed", "--coordinator_address=localhost"),
         "--coordinator_address=localhost", "HOST:PORT"),
    _syn("process_flags_without_distributed", ("--num_processes=2",),
         "--num_processes only with --distributed"),
    _syn("unknown_method", ("--methods=principled,foo",), "['foo']", "available: principled"),
    _syn("repeated_method", ("--methods=stl,stl",), "methods repeat"),
    _syn("zero_clusters", ("--num_clusters=0",), "--num_clusters"),
    _syn("nan_rho", ("--rho=nan",), "--rho", "nan"),
    _syn("zero_max_steps", ("--max_steps=0",), "--max_steps", "0"),
    _syn("negative_seed", ("--seed=-1",), "--seed", "-1"),
    _syn("zero_collect_every", ("--collect_every=0",), "collect_every"),
    _syn("zero_collect_steps", ("--collect_steps=0",), "--collect_steps must be >= 1"),
    _syn("sample_tasks_above_tasks", ("--sample_tasks=5",), "sample_tasks", "4 tasks"),
    _syn("pair_count_out_of_reach", ("--sample_tasks=2", "--sample_bias=pairs",
                                     "--min_pair_count=50"),
         "min_pair_count=50 needs 300 training steps", "a round of 6 draws", "the run has"),
    _syn("pair_count_needs_pairs_draws", ("--sample_tasks=2", "--min_pair_count=1"),
         "min_pair_count", "needs sample_bias=pairs"),
    _syn("zero_max_lookaheads", ("--max_lookaheads=0",), "max_lookaheads must be >= 1"),
    _syn("negative_checkpoint_every", ("--checkpoint_every=-1",), "--checkpoint_every"),
    _syn("zero_eval_seeds", ("--eval_seeds=0",), "--eval_seeds"),
    _syn("landscape_knn_too_large", ("--methods=landscape,stl", "--landscape_knn=4"),
         "landscape_knn", "between 1 and 3"),
    _syn("unknown_enum_value", ("--strategy=fast",), "--strategy=fast", "auto|map|vmap"),
    _syn("unknown_flag", ("--num_cluster=3",), "num_cluster"),
    _syn("stray_argument", ("principled",), "unexpected arguments", "principled"),
    _syn("negative_num_groups", ("--num_groups=-2",), "--num_groups", "-2"),
    _syn("zero_max_group_size", ("--max_group_size=0",), "max_group_size", "0"),
    _syn("must_link_syntax", ("--must_link=c0_t0",), "--must_link", "task_a:task_b"),
    _group("cannot_link_syntax", ("--gains=inputs/good.json", "--num_groups=2",
                                  "--cannot_link=a:b:c"), "--cannot_link", "'a:b:c'"),
    _group("link_to_itself", ("--gains=inputs/good.json", "--num_groups=2", "--must_link=a:a"),
           "must_link", "itself"),
    _group("unknown_objective", ("--gains=inputs/good.json", "--objective=best"),
           "--objective=best", "principled|marginal|tag"),
    _select("negative_budget", ("--table=inputs/good.tsv", "--budget=-1"), "--budget", "-1"),
    _select("missing_budget", ("--table=inputs/good.tsv",), "--budget is required"),
    Case("summarize_empty_entry", "launch.summarize", ("--workdirs=earlier,",),
         ("--workdirs", "empty entry")),
    # Combinations that make no sense.
    _syn("min_above_max_group_size", ("--min_group_size=3", "--max_group_size=2"),
         "min_group_size=3", "max_group_size=2"),
    _syn("num_groups_above_max_groups", ("--num_groups=3", "--max_groups=2"),
         "num_groups=3", "max_groups=2"),
    _syn("free_groups_with_self_pair", ("--num_groups=0", "--principled_form=self_pair"),
         "principled", "num_groups", "principled_form=marginal"),
    _syn("landscape_with_links", ("--methods=landscape,stl", "--cannot_link=c0_t0:c1_t0"),
         "landscape", "cannot_link"),
    _syn("oracle_over_limit", ("--methods=oracle,stl", "--max_oracle_networks=7"),
         "2^4 - 1 = 15", "max_oracle_networks=7"),
    _syn("random_without_group_count", ("--methods=random,stl", "--num_groups=0"), "random",
         "num_groups"),
    # Infeasible constraints: the message names the constraint(s).
    _syn("num_groups_above_tasks", ("--num_groups=5",), "num_groups=5", "4 tasks"),
    _syn("must_link_and_cannot_link", ("--must_link=c0_t0:c0_t1", "--cannot_link=c0_t1:c0_t0"),
         "cannot_link", "must_link", "c0_t0"),
    _syn("too_small_groups", ("--max_group_size=1",), "num_groups=2", "max_group_size=1"),
    _group("alone_and_must_link", ("--gains=inputs/good.json", "--num_groups=2",
                                   "--must_link=a:b", "--alone=a"), "alone", "must_link"),
    _group("cannot_link_everything", ("--gains=inputs/good.json", "--num_groups=2",
                                      "--cannot_link=a:b,b:c,a:c"), "num_groups=2",
           "cannot_link"),
    _select("budget_too_small", ("--table=inputs/good.tsv", "--budget=0.5"),
            "budget 0.5", "cheapest", "1.5"),
    # Malformed TSV: the file and the line.
    _select("tsv_ragged_row", ("--table=inputs/ragged.tsv", "--budget=2"),
            "inputs/ragged.tsv:2:", "2 tab-separated columns, expected 3"),
    _select("tsv_not_a_number", ("--table=inputs/not_a_number.tsv", "--budget=2"),
            "inputs/not_a_number.tsv:3:", "'x0.5' is not a number"),
    _select("tsv_negative_loss", ("--table=inputs/negative.tsv", "--budget=2"),
            "inputs/negative.tsv:2:", "negative"),
    _select("tsv_empty", ("--table=inputs/empty.tsv", "--budget=2"), "inputs/empty.tsv", "empty"),
    _select("tsv_missing", ("--table=inputs/nothing.tsv", "--budget=2"),
            "inputs/nothing.tsv", "no such file"),
    _select("tsv_is_a_directory", ("--table=inputs", "--budget=2"), "inputs", "cannot read"),
    # Malformed JSON: the file and the line.
    _group("json_truncated", ("--gains=inputs/truncated.json", "--num_groups=2"),
           "inputs/truncated.json:", "not valid JSON"),
    _group("json_wrong_keys", ("--gains=inputs/wrong_keys.json", "--num_groups=2"),
           "inputs/wrong_keys.json:1:", "'tasks'"),
    _group("json_not_square", ("--gains=inputs/not_square.json", "--num_groups=2"),
           "inputs/not_square.json:14:", "3x3", "row 1 has 2 entries"),
    _group("json_missing", ("--gains=inputs/nothing.json", "--num_groups=2"),
           "inputs/nothing.json", "no such file"),
    _group("json_is_a_directory", ("--gains=inputs", "--num_groups=2"), "inputs", "cannot read"),
    Case("summarize_not_a_report", "launch.summarize", ("--workdirs=inputs/not_a_report",),
         ("inputs/not_a_report/report.json:1:", "'methods'")),
    # Non-finite values in a gains file.
    _group("gains_nan", ("--gains=inputs/nan_gain.json", "--num_groups=2"),
           "inputs/nan_gain.json:21:", "gains[2][1] (c -> b) is not finite"),
    _group("gains_infinity", ("--gains=inputs/inf_gain.json", "--num_groups=2"),
           "inputs/inf_gain.json:12:", "gains[0][2] (a -> c) is not finite"),
    _group("gains_negative_count", ("--gains=inputs/negative_count.json", "--num_groups=2"),
           "inputs/negative_count.json:34:", "counts[1][2]"),
    # A workdir that is a file, or cannot be created or written.
    Case("workdir_is_a_file", "launch.synthetic", (*TINY[:-1], "--workdir=inputs/a_file"),
         ("--workdir=inputs/a_file", "is a file")),
    Case("workdir_under_a_file", "launch.digits", ("--quiet", "--workdir=inputs/a_file/run"),
         ("--workdir=inputs/a_file/run", "cannot be created", "is a file")),
    Case("workdir_missing", "launch.synthetic", TINY[:-1], ("--workdir is required",)),
    Case("output_is_a_directory", "launch.group", ("--gains=inputs/good.json",
                                                   "--num_groups=2", "--output=inputs"),
         ("cannot write inputs",)),
]


def _unwritable_dir(base: str) -> str | None:
  """A directory this process cannot write into, or None (root writes anywhere)."""
  if os.geteuid() != 0:
    path = os.path.join(base, "read_only")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o555)
    return path
  try:  # root: sysfs refuses new files even to root
    os.close(tempfile.mkstemp(dir="/sys")[0])
  except OSError:
    return "/sys"
  return None


def unwritable_case(base: str) -> Case | None:
  """The workdir-not-writable case, where this machine has such a directory."""
  parent = _unwritable_dir(base)
  if parent is None:
    return None
  return Case("workdir_not_writable", "launch.synthetic",
              (*TINY[:-1], f"--workdir={parent}/run"), (f"--workdir={parent}/run", "not writable"))


def prepare(base: str) -> None:
  """Writes INPUTS under base/inputs and earlier results under base/earlier."""
  for name, text in INPUTS.items():
    path = os.path.join(base, "inputs", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write(text)
  earlier = os.path.join(base, "earlier")
  for name in ("report.json", "groups.json", "gains.json", "groups_out.json", "select_out.json",
               os.path.join("networks", "abc", "g0_s0.json")):
    os.makedirs(os.path.dirname(os.path.join(earlier, name)), exist_ok=True)
    with open(os.path.join(earlier, name), "w") as f:
      f.write(json.dumps({"earlier result": name}) + "\n")


def snapshot(directory: str) -> dict[str, bytes]:
  """Every file under directory, by relative path, with its bytes."""
  out = {}
  for parent, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(parent, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def command(case: Case) -> list[str]:
  """The command a user types for ``case``."""
  return [sys.executable, "-m", case.module, *case.args]


def _env() -> dict[str, str]:
  path = [ROOT] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
  return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def run_cases(cases, base: str, workers: int = 2) -> dict[str, subprocess.CompletedProcess]:
  """Runs every case's launcher in its own process, in ``base``.

  Importing a JAX launcher takes ~2 s of CPU and failing takes milliseconds,
  so one driver process per launcher imports it once and forks a child per
  case; the child runs exactly what ``python -m launch.<name>`` runs,
  ``cli.run(main)``, with its own argv, stdout, stderr and exit status (an
  uncaught exception prints its traceback and exits 1, as Python does).
  JAX is only imported before the fork, never initialised, so the children
  start clean. ``/tmp/errors_table.py`` checks that real ``python -m`` runs
  print the same.
  """
  by_module: dict[str, list[Case]] = {}
  for case in cases:
    by_module.setdefault(case.module, []).append(case)

  def drive(module_cases):
    spec = [[c.name, c.module, list(c.args)] for c in module_cases]
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(spec)], cwd=base,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)

  results = {}
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for out in pool.map(drive, by_module.values()):
      for name, (rc, stdout, stderr) in out.items():
        results[name] = subprocess.CompletedProcess(name, rc, stdout, stderr)
  return results


_DRIVER = r"""
import importlib, json, os, sys, tempfile, traceback
cases = json.loads(sys.argv[1])
module = importlib.import_module(cases[0][1])
from launch import cli
results = {}
for name, _, args in cases:
  out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
  pid = os.fork()
  if pid == 0:
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.argv = [module.__file__] + args
    code = 0
    try:
      cli.run(module.main)
    except SystemExit as e:
      if isinstance(e.code, str):
        print(e.code, file=sys.stderr)
      code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
      traceback.print_exc()
      code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  _, status = os.waitpid(pid, 0)
  out.seek(0)
  err.seek(0)
  results[name] = [os.waitstatus_to_exitcode(status), out.read(), err.read()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("errors"))
  prepare(base)
  before = snapshot(os.path.join(base, "earlier"))
  extra = unwritable_case(base)
  results = run_cases(CASES + ([extra] if extra else []), base)
  return results, before, snapshot(os.path.join(base, "earlier")), extra


def check_one_line_error(proc: subprocess.CompletedProcess, words) -> str:
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = proc.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
  for word in words:
    assert word in lines[0], (word, lines[0])
  assert proc.stdout == ""
  return lines[0]


def test_case_names_are_unique():
  assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_line_error_and_exit_status_2(runs, case):
  results, _, _, _ = runs
  check_one_line_error(results[case.name], case.words)


def test_unwritable_workdir(runs):
  results, _, _, extra = runs
  if extra is None:
    pytest.skip("no directory on this machine refuses this process's writes")
  check_one_line_error(results[extra.name], extra.words)


def test_earlier_results_are_intact(runs):
  _, before, after, _ = runs
  assert after == before


# Library level, in-process.


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_constant_label_task_is_refused_naming_task_and_split(split):
  ts = synthetic.synthetic(2, 2, num_train=64, num_val=32, num_test=32, batch_size=32)
  dataset = getattr(ts, split)
  labels = np.array(dataset.labels)
  labels[:, 2] = 0.25
  with pytest.raises(UserError) as info:
    dataclasses.replace(ts, **{split: data_lib.ArrayDataset(dataset.inputs, labels)})
  message = str(info.value)
  assert f"task 'c1_t0' has constant labels in the {split} split" in message
  assert "\n" not in message


def test_labels_that_vary_pass():
  ts = synthetic.synthetic(2, 2, num_train=64, num_val=32, num_test=32, batch_size=32)
  labels = np.array(ts.test.labels)
  labels[1:, 3] = labels[0, 3]  # one sample differs: still something to tell apart
  labels[0, 3] += 1.0
  dataclasses.replace(ts, test=data_lib.ArrayDataset(ts.test.inputs, labels))


def test_constant_label_task_through_cli_run_is_one_line(tmp_path):
  """What a user's own launcher built on cli.run prints for a constant-label task."""
  proc = subprocess.run([sys.executable, "-c", CONSTANT_LABEL_SCRIPT], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  check_one_line_error(proc, ("task 'c0_t1'", "constant labels", "train split"))


CONSTANT_LABEL_SCRIPT = """
import dataclasses
import numpy as np
from launch import cli
from tgroup import data
from tgroup.benchmarks.synthetic import synthetic

def main(argv):
  ts = synthetic(2, 2, num_train=64, num_val=32, num_test=32, batch_size=32)
  labels = np.array(ts.train.labels)
  labels[:, 1] = 1.0
  dataclasses.replace(ts, train=data.ArrayDataset(ts.train.inputs, labels))

cli.run(main)
"""


def test_gains_errors_name_the_line(tmp_path):
  path = tmp_path / "g.json"
  path.write_text('{"tasks": ["a", "b"],\n "gains": [\n  [1, 2],\n  [3, "x"]\n ]\n}\n')
  with pytest.raises(UserError, match=r"g\.json:4: gains\[1\]\[1\] is \"x\", not a number"):
    Gains.load(str(path))


@pytest.mark.parametrize("keys,line", [((), 1), (("a",), 2), (("a", 1), 4), (("a", 1, "b"), 5),
                                       (("a", 1, "zz"), 4), (("a", 7), 2), (("c",), 7),
                                       (("a", "x"), 2)])
def test_json_line(keys, line):
  text = '{\n "a": [\n  0,\n  {"z": [1, {"b": 2}],\n   "b": "x,]}"}\n ],\n "c": null, "c": [1]\n}'
  assert json.loads(text)  # valid JSON
  assert io.json_line(text, keys) == line


def test_check_workdir_refuses_what_it_cannot_write(tmp_path, monkeypatch):
  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")
  monkeypatch.setattr(tempfile, "mkstemp", refuse)
  with pytest.raises(UserError, match=r"--workdir=.*/new cannot be created: .* is not writable "
                                      r"\(Permission denied\)"):
    cli.check_workdir(str(tmp_path / "new"))
  with pytest.raises(UserError, match=r"is not writable"):
    cli.check_workdir(str(tmp_path))


def test_check_workdir_leaves_nothing_behind(tmp_path):
  assert cli.check_workdir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
  assert cli.check_workdir(str(tmp_path)) == str(tmp_path)
  assert os.listdir(tmp_path) == []


def test_a_real_bug_keeps_its_traceback(tmp_path):
  """Only user mistakes become one line: an internal error must still show where it is."""
  script = "from launch import cli\ndef main(argv):\n  raise KeyError('bug')\ncli.run(main)\n"
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 1
  assert "Traceback" in proc.stderr and "KeyError: 'bug'" in proc.stderr
