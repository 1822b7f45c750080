"""Two processes on the loopback interface run one job with JAX's distributed runtime.

Each process fakes 2 CPU devices, so ``--mesh=auto`` spans 4 devices over two
processes and every batch, lookahead block and chunk of networks is split
across hosts (gloo collectives). Every process is started in a session of its
own, waited for with a deadline, and killed with its children on any way out of
the test: a process that dies cannot leave its partner running.
"""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import error_lines, one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ("--num_clusters=2", "--tasks_per_cluster=2", "--max_steps=30", "--quiet",
         "--methods=principled,tag,stl,mtl_all", "--compilation_cache=")
DEADLINE_S = 240


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(*args, devices: int = 1, flags=FLAGS, **popen):
  # XLA's cheapest CPU code generation, for every run compared: the test is about layout.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             "--xla_backend_optimization_level=0")
  return subprocess.Popen([sys.executable, "-m", "launch.synthetic", *flags, *args], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **popen)


def run_together(*per_process_args, flags=FLAGS, kill_when=None
                 ) -> list[subprocess.CompletedProcess]:
  """Runs one distributed job, a process per argument tuple; every process is gone after.

  ``kill_when``: a function polled every few ms; once true, every process is
  SIGKILLed (a job killed by its scheduler).
  """
  port = free_port()
  procs = [launch("--distributed", f"--coordinator_address=127.0.0.1:{port}",
                  f"--num_processes={len(per_process_args)}", f"--process_id={i}",
                  "--initialization_timeout=60", *args, devices=2, flags=flags)
           for i, args in enumerate(per_process_args)]
  try:
    deadline = time.monotonic() + DEADLINE_S
    while kill_when is not None and time.monotonic() < deadline:
      if kill_when() or any(p.poll() is not None for p in procs):
        for p in procs:
          os.killpg(p.pid, signal.SIGKILL)
        break
      time.sleep(0.002)
    outs = []
    for p in procs:
      # A dead partner makes the others fail within JAX's heartbeat timeout,
      # well inside the deadline; the deadline is for anything else.
      out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
      outs.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return outs
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    for p in procs:  # and nothing a process started outlives it
      with pytest.raises(ProcessLookupError):
        os.killpg(p.pid, 0)


def read(path):
  with open(path) as f:
    return json.load(f)


def flat(tree, prefix=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from flat(v, f"{prefix}/{k}")
  elif isinstance(tree, list):
    for i, v in enumerate(tree):
      yield from flat(v, f"{prefix}[{i}]")
  else:
    yield prefix, tree


def assert_same_report(one, many, same_settings=False):
  """Equal, floats to 1e-5 relative, apart from the timings and the mesh setting."""
  one = {k: v for k, v in flat(one) if "seconds" not in k}
  many = {k: v for k, v in flat(many) if "seconds" not in k}
  mesh = set() if same_settings else {"/settings/mesh", "/settings/collect/mesh"}
  assert set(many) - set(one) == mesh
  assert set(one) <= set(many)
  for k, v in one.items():
    if isinstance(v, float):
      assert many[k] == pytest.approx(v, rel=1e-5, abs=1e-9), k
    else:
      assert many[k] == v, k


def single_run(workdir, flags=FLAGS):
  proc = launch(f"--workdir={workdir}", flags=flags)
  _, err = proc.communicate(timeout=DEADLINE_S)
  assert proc.returncode == 0, err[-3000:]


def test_two_processes_give_the_single_process_report_and_only_process_0_writes(tmp_path):
  """The test the default suite runs: slower checks below run under ``-m slow``."""
  single_run(tmp_path / "single")
  single = read(tmp_path / "single" / "report.json")
  first, second = tmp_path / "first", tmp_path / "second"
  procs = run_together((f"--workdir={first}",), (f"--workdir={second}",))
  assert [p.returncode for p in procs] == [0, 0], procs[0].stderr[-3000:] + procs[1].stderr[-3000:]
  report = read(first / "report.json")
  assert_same_report(single, report)
  written = [os.path.join(d, f) for d, _, files in os.walk(second) for f in files]
  assert written == []  # process 1 computed everything and wrote nothing


@pytest.mark.slow
def test_a_job_run_again_reuses_what_process_0_wrote(tmp_path):
  """Both processes on process 0's work directory (a shared disk): nothing is recomputed."""
  first = tmp_path / "first"
  procs = run_together((f"--workdir={first}",), (f"--workdir={tmp_path / 'second'}",))
  assert [p.returncode for p in procs] == [0, 0], procs[0].stderr[-3000:]
  report = read(first / "report.json")
  kept = {f: os.stat(f).st_mtime_ns
          for f in [*first.glob("gains_*.json"), *first.glob("networks/*/*.json")]}
  assert len([f for f in kept if f.parent.parent.name == "networks"
              and f.name != "identity.json"]) == 7  # 4 + 2 + 1 groups
  again = run_together((f"--workdir={first}",), (f"--workdir={first}",))
  assert [p.returncode for p in again] == [0, 0], again[1].stderr[-3000:]
  assert {f: os.stat(f).st_mtime_ns for f in kept} == kept
  assert_same_report(report, read(first / "report.json"), same_settings=True)


@pytest.mark.slow
def test_a_killed_job_resumes_its_collection_from_process_0s_checkpoint(tmp_path):
  flags = ("--num_clusters=1", "--tasks_per_cluster=3", "--num_groups=2", "--train_steps=300",
           "--methods=principled,stl", "--compilation_cache=")
  single_run(tmp_path / "reference", flags)
  shared = (f"--workdir={tmp_path / 'run'}", "--checkpoint_every=20")
  checkpoints = str(tmp_path / "run" / "checkpoints" / "collect" / "*" / "*")
  seen = set()

  def two_checkpoints_written():
    seen.update((f, os.stat(f).st_mtime_ns) for f in glob.glob(checkpoints) if os.path.exists(f))
    return len(seen) >= 2

  killed = run_together(shared, shared, flags=flags, kill_when=two_checkpoints_written)
  assert [p.returncode for p in killed] == [-signal.SIGKILL] * 2, killed[0].stderr[-3000:]
  again = run_together(shared, shared, flags=flags)
  assert [p.returncode for p in again] == [0, 0], again[0].stderr[-3000:]
  step = re.findall(r"resuming collection at step (\d+)/300", again[0].stderr)
  assert step and 0 < int(step[0]) < 300, again[0].stderr[-3000:]
  one, many = (read(tmp_path / d / "gains_principled.json")["gains"] for d in ("reference", "run"))
  assert np.max(np.abs(np.subtract(many, one))) <= 1e-5 * np.max(np.abs(one))
  assert (read(tmp_path / "run" / "groups.json")["groups"]
          == read(tmp_path / "reference" / "groups.json")["groups"])


def test_a_mistake_is_said_once_and_every_process_exits_2(tmp_path):
  # 4 devices over 2 processes; the batch of 256 does not split over data:3 x combos... nor
  # does the mesh fit: the first check to fail is the batch's.
  procs = run_together((f"--workdir={tmp_path}", "--mesh=data:3"),
                       (f"--workdir={tmp_path}", "--mesh=data:3"))
  assert "batch size 256" in one_line_error(procs[0])
  assert procs[1].returncode == 2 and error_lines(procs[1]) == []
  assert "Traceback" not in procs[1].stderr
