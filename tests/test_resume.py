"""Checkpoint and resume: a run killed at any instant and rerun equals an uninterrupted one.

Unit tests check the checkpoint file (round trip, corruption, another run's
checkpoint) and the data position; in-process tests resume collection from
saved checkpoints; launcher tests kill ``launch.synthetic`` with SIGKILL during
collection and during oracle training, rerun the same command, and compare every
result with an uninterrupted run's.
"""
import dataclasses
import functools
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_synthetic
from tgroup import checkpoint
from tgroup import evaluate
from tgroup import train
from tgroup.benchmarks.tfds_source import RecordDataset
from tgroup.data import ArrayDataset
from tgroup.errors import UserError
from tgroup.evaluate import NetworkResult
from tgroup.gains import CollectConfig, lookahead, run_collection
from tgroup.gains import collect as collect_lib
from tgroup.netcache import NetworkCache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leaves_equal(a, b) -> bool:
  """Bitwise equality of two pytrees (typed PRNG keys compared by their key data)."""
  raw = lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
      x.dtype, jax.dtypes.prng_key) else x)
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return (jax.tree.structure(a) == jax.tree.structure(b) and len(la) == len(lb)
          and all(x.dtype == y.dtype and np.array_equal(raw(x), raw(y)) for x, y in zip(la, lb)))


@functools.lru_cache(maxsize=1)
def adam_state():
  """A TrainState with Adam moments and its collector state, a few steps in (built once)."""
  ts = dataclasses.replace(tiny_synthetic(), optimizer=optax.adam(1e-2))
  state = train.init_state(ts, jax.random.key(0))
  update = jax.jit(train.make_update_fn(ts))
  batches = ts.train.train_batches(ts.batch_size, seed=0)
  for _ in range(3):
    state, _ = update(state, next(batches), jnp.ones(ts.num_tasks))
  cstate = lookahead.init_collector(jax.random.key(5), ts.num_tasks, ("principled", "tag"))
  return state, cstate


# --- the checkpoint file ---------------------------------------------------------------------


def test_checkpoint_round_trip_is_bitwise(tmp_path):
  state, cstate = adam_state()
  tree = (state, cstate, {"half": jnp.arange(4, dtype=jnp.bfloat16) / 3})
  path = str(tmp_path / "state.npz")
  checkpoint.save(path, tree, {"fingerprint": {"a": [1, 2]}, "step": 3})
  like = jax.tree.map(jnp.zeros_like, tree)
  back, record = checkpoint.restore(path, like, fingerprint={"a": (1, 2)})
  assert record["step"] == 3
  assert leaves_equal(back, tree)
  assert jax.dtypes.issubdtype(back[1].key.dtype, jax.dtypes.prng_key)
  assert int(back[0].opt_state[0].count) == 3  # Adam's step count survives as an int32
  assert not [f for f in os.listdir(tmp_path) if f != "state.npz"]  # no temporary file left


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupted_checkpoint_is_a_user_error_naming_the_file(tmp_path, damage):
  state, cstate = adam_state()
  path = str(tmp_path / "state.npz")
  checkpoint.save(path, (state, cstate), {"step": 1})
  payload = open(path, "rb").read()
  payload = {"garbage": b"not a checkpoint" * 10, "truncated": payload[:len(payload) // 2],
             "empty": b""}[damage]
  open(path, "wb").write(payload)
  with pytest.raises(UserError, match=re.escape(path)) as e:
    checkpoint.restore(path, (state, cstate))
  assert "\n" not in str(e.value)


def test_checkpoint_of_another_run_or_model_is_refused(tmp_path):
  state, cstate = adam_state()
  path = str(tmp_path / "state.npz")
  checkpoint.save(path, (state, cstate), {"fingerprint": {"settings": {"seed": 0}}, "step": 1})
  with pytest.raises(UserError, match=re.escape(path) + r".*another run.*settings\.seed"):
    checkpoint.restore(path, (state, cstate), fingerprint={"settings": {"seed": 1}})
  other = train.init_state(tiny_synthetic(3, 2), jax.random.key(0))  # 6 heads, not 6 + Adam
  with pytest.raises(UserError, match=re.escape(path)):
    checkpoint.restore(path, (other, cstate))
  with pytest.raises(UserError, match="no such checkpoint"):
    checkpoint.restore(str(tmp_path / "missing.npz"), (state, cstate))


def test_corrupted_network_cache_entry_is_a_user_error(tmp_path):
  cache = NetworkCache(str(tmp_path), {"benchmark": "toy"})
  cache.put((0,), 0, NetworkResult((0,), np.ones(2), np.ones(2), None, None, 1.0))
  path = cache._path((0,), 0)  # pylint: disable=protected-access
  open(path, "w").write('{"group": [0]}')
  with pytest.raises(UserError, match=re.escape(path)):
    cache.get((0,), 0)


# --- the data position -----------------------------------------------------------------------


def records(n):
  source = [{"x": i} for i in range(n)]
  to_arrays = lambda exs: (np.array([[e["x"]] for e in exs]), np.zeros((len(exs), 1)))
  return RecordDataset(source, to_arrays, workers=1)


@pytest.mark.parametrize("dataset", [ArrayDataset(np.arange(10)[:, None], np.zeros((10, 1))),
                                     records(10)], ids=["array", "records"])
def test_train_batches_start_is_the_tail_of_the_stream(dataset):
  take = lambda it, k: [b.inputs[:, 0].tolist() for b, _ in zip(it, range(k))]
  whole = take(dataset.train_batches(3, seed=4), 14)  # 3 batches per epoch
  for start in (0, 1, 2, 3, 7, 11):
    assert take(dataset.train_batches(3, seed=4, start=start), 14 - start) == whole[start:]


# --- collection resumes in-process -----------------------------------------------------------


class StartlessDataset:
  """A user's dataset with only ``train_batches(batch_size, seed)``: resumed by skipping."""

  def __init__(self, inner):
    self.inner = inner

  def __len__(self):
    return len(self.inner)

  def train_batches(self, batch_size, seed):
    return self.inner.train_batches(batch_size, seed)

  def eval_batches(self, batch_size):
    return self.inner.eval_batches(batch_size)


def test_collection_resumed_from_a_checkpoint_is_bitwise_uninterrupted(tmp_path, saved_checkpoints):
  ts = dataclasses.replace(tiny_synthetic(2, 2), optimizer=optax.adam(1e-2))
  # Task draws (rare bias) exercise the collector's PRNG key and draw counts.
  config = CollectConfig(measures=("principled",), steps=23, collect_every=2, sample_tasks=3,
                         sample_bias="rare", strategy="vmap", checkpoint_every=5, quiet=True)
  kept = saved_checkpoints  # step -> a copy of the checkpoint written then
  directory = str(tmp_path / "ckpt")
  whole, whole_state, _ = run_collection(ts, config, checkpoint_dir=directory,
                                         identity={"run": 1})
  assert sorted(kept) == [5, 10, 15, 20]  # none at the end: the caller saves the gains
  # From step 5 on a dataset that can only be skipped by drawing batches (the
  # launcher tests resume in-memory datasets, which skip by index).
  for step, dataset in ((5, StartlessDataset(ts.train)),):
    with open(os.path.join(directory, collect_lib.CHECKPOINT_FILE), "wb") as f:
      f.write(kept[step])
    resumed, state, _ = run_collection(dataclasses.replace(ts, train=dataset), config,
                                       checkpoint_dir=directory, identity={"run": 1})
    assert leaves_equal(state, whole_state), step
    assert np.array_equal(resumed["principled"].gains, whole["principled"].gains), step
    assert np.array_equal(resumed["principled"].counts, whole["principled"].counts), step
    assert resumed["principled"].counts.sum() == whole["principled"].counts.sum() > 0
  # Another run's settings or identity meet this checkpoint: refused, naming the file.
  path = os.path.join(directory, collect_lib.CHECKPOINT_FILE)
  for other_config, identity in ((dataclasses.replace(config, seed=1), {"run": 1}),
                                 (config, {"run": 2})):
    with pytest.raises(UserError, match=re.escape(path) + ".*another run"):
      run_collection(ts, other_config, checkpoint_dir=directory, identity=identity)
  collect_lib.clear_checkpoint(directory, root=str(tmp_path))
  assert os.listdir(tmp_path) == []


def test_checkpoint_every_is_validated_and_not_a_setting(tiny):
  with pytest.raises(UserError, match="checkpoint_every"):
    CollectConfig(checkpoint_every=0).validate(tiny.num_tasks)
  assert "checkpoint_every" not in CollectConfig(checkpoint_every=9).settings(tiny)


# --- the launcher, killed with SIGKILL -------------------------------------------------------

# Three tasks (so the oracle trains 2^3 - 1 = 7 networks, in 4 chunks of 2) and a
# collection run of 300 steps checkpointed every 20.
ARGS = ["--num_clusters=1", "--tasks_per_cluster=3", "--num_groups=2", "--train_steps=300",
        "--chunk_size=2"]
CHECKPOINTS = "checkpoints/collect/*/" + collect_lib.CHECKPOINT_FILE
NETWORKS = "networks/*/*_s0.json"


def launch(workdir, cache, args):
  return subprocess.Popen([sys.executable, "-m", "launch.synthetic", f"--workdir={workdir}",
                           f"--compilation_cache={cache}", *args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err
  return err


def versions(pattern):
  """Distinct versions of the files matching ``pattern`` (an atomic rename makes a new one)."""
  found = set()
  for path in glob.glob(pattern):
    try:
      st = os.stat(path)
    except FileNotFoundError:
      continue
    found.add((path, st.st_ino, st.st_mtime_ns))
  return found


def kill_after(proc, pattern, count, delay_s):
  """SIGKILLs ``proc`` ``delay_s`` after ``count`` new versions of ``pattern`` appeared.

  Returns (whether it was killed rather than ending first, its stderr).
  """
  seen = versions(pattern)
  before = len(seen)
  while proc.poll() is None:
    seen |= versions(pattern)
    if len(seen) - before >= count:
      time.sleep(delay_s)
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.0005)
  _, err = proc.communicate(timeout=600)
  return proc.returncode == -signal.SIGKILL, err


def results(workdir):
  """Everything a rerun must reproduce: gains, groups, per-task test losses."""
  load = lambda name: json.load(open(os.path.join(workdir, name)))
  out = {}
  if os.path.exists(os.path.join(workdir, "gains.json")):
    out["gains"] = np.array(load("gains.json")["gains"])
    out["counts"] = load("gains.json")["counts"]
  if os.path.exists(os.path.join(workdir, "groups.json")):
    out["groups"] = load("groups.json")["groups"]
  report = load("report.json")
  out["methods"] = {name: (e["groups"], {t: v["test_loss"] for t, v in e["per_task"].items()})
                    for name, e in report["methods"].items()}
  if os.path.exists(os.path.join(workdir, "oracle", "table.json")):
    out["table"] = np.array([r["val_loss"] + r["test_loss"]
                             for r in load("oracle/table.json")["networks"]])
  return out


def max_difference(a, b) -> float:
  """Largest absolute difference between two :func:`results` (after checking their shapes)."""
  assert a.keys() == b.keys()
  diffs = [0.0]
  for key in a:
    if key in ("gains", "table"):
      diffs.append(float(np.abs(a[key] - b[key]).max()))
    elif key == "methods":
      assert a[key].keys() == b[key].keys()
      for name in a[key]:
        (ga, la), (gb, lb) = a[key][name], b[key][name]
        assert ga == gb, name
        diffs += [abs(la[t] - lb[t]) for t in la]
    else:
      assert a[key] == b[key], key
  return max(diffs)


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("xla"))


def test_killed_in_collection_and_oracle_resumes_to_the_same_results(tmp_path,
                                                                      compilation_cache):
  """Three kills during collection, one during oracle training, then a rerun to the end."""
  methods = "--methods=principled,oracle,stl"
  reference = str(tmp_path / "reference")
  finish(launch(reference, compilation_cache, ARGS + [methods, "--checkpoint_every=0"]))
  workdir = str(tmp_path / "killed")
  args = ARGS + [methods, "--checkpoint_every=20"]
  rng = random.Random(0)
  resumed_at, networks_at_kill = [], None
  for kill in range(5):
    proc = launch(workdir, compilation_cache, args)
    if kill < 3:  # 2 new checkpoints, then a few ms: mid-step or mid-write
      killed, err = kill_after(proc, os.path.join(workdir, CHECKPOINTS), 2, rng.uniform(0, 0.02))
    elif kill == 3:  # the first network of the oracle's next chunk, then up to 0.3 s
      killed, err = kill_after(proc, os.path.join(workdir, NETWORKS), 1, rng.uniform(0, 0.3))
      networks_at_kill = len(glob.glob(os.path.join(workdir, NETWORKS)))
    else:
      killed, err = False, finish(proc)
    assert killed == (kill < 4), f"run {kill} ended before the kill: {err}"
    if 1 <= kill <= 3:
      found = re.findall(r"resuming collection at step (\d+)/300", err)
      resumed_at.append(int(found[0]) if found else None)
  print("collection resumed at steps", resumed_at, "; oracle killed with", networks_at_kill,
        "of 7 networks done")
  assert all(r is not None and 0 < r < 300 for r in resumed_at), resumed_at
  assert resumed_at == sorted(set(resumed_at))
  assert 0 < networks_at_kill < 7
  assert "reusing gains" in err  # the last run: collection was finished and saved
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))  # deleted after the gains
  difference = max_difference(results(reference), results(workdir))
  print("max abs difference", difference)
  assert difference <= 1e-6


@pytest.mark.slow
def test_oracle_killed_three_times_resumes_to_the_same_results(tmp_path, compilation_cache):
  args = ARGS + ["--methods=oracle,stl"]
  reference = str(tmp_path / "reference")
  finish(launch(reference, compilation_cache, args))
  workdir = str(tmp_path / "killed")
  pattern = os.path.join(workdir, NETWORKS)
  rng = random.Random(1)
  done = []
  for kill in range(3):
    proc = launch(workdir, compilation_cache, args)
    killed, err = kill_after(proc, pattern, 1, rng.uniform(0.0, 0.05))
    assert killed, f"run {kill} ended before the kill: {err}"
    done.append(len(glob.glob(pattern)))
  print("networks done at the kills", done)
  # Every rerun resumed and made progress; the last kill may land after the oracle's
  # last network (while the report is written): a resume point too.
  assert 0 < done[0] < 7 and done == sorted(set(done)), done
  finish(launch(workdir, compilation_cache, args))
  difference = max_difference(results(reference), results(workdir))
  print("max abs difference", difference)
  assert difference <= 1e-6


def test_negative_checkpoint_every_exits_2(tmp_path, compilation_cache):
  proc = launch(str(tmp_path / "run"), compilation_cache, ARGS + ["--checkpoint_every=-1"])
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 2
  assert [l for l in err.splitlines() if l.startswith("error:")] == [
      "error: --checkpoint_every must be >= 0 (0: no checkpoints), got -1"]


def test_a_resumed_network_does_not_depend_on_which_networks_were_done(tmp_path):
  """A kill between two cache writes of one chunk shifts every later chunk's members."""
  ts = tiny_synthetic(1, 3)
  groups = [(0,), (1,), (2,)]
  train = lambda cache: evaluate.train_groups(ts, groups, steps=20, chunk_size=2, quiet=True,
                                              cache=cache)
  whole = train(None)  # chunks {0}{1}, {2}+padding
  cache = NetworkCache(str(tmp_path), {"test": "chunks"})
  cache.put((0,), 0, whole[(0,)])  # killed after the first network of the first chunk
  resumed = train(cache)  # chunk {1}{2}
  for g in groups:
    for field in ("test_loss", "test_metric", "val_loss", "val_metric"):
      assert np.array_equal(getattr(resumed[g], field), getattr(whole[g], field)), (g, field)
