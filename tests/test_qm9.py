"""The QM9 benchmark: loader, descriptors, standardisation, launcher.

Tests that read QM9 skip when the optional qm9pack package is missing
(``pip install -e '.[qm9]'``); the missing-package message is tested always.
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import error_lines
from tgroup.benchmarks import qm9
from tgroup.benchmarks.qm9 import data as qm9_data
from tgroup.benchmarks.qm9 import descriptors as qm9_descriptors
from tgroup.benchmarks.qm9 import models as qm9_models
from tgroup.errors import UserError
from expected_gains import off_diagonal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_qm9 = pytest.mark.skipif(qm9_data.data_dir() is None,
                               reason="qm9pack is not installed: pip install -e '.[qm9]'")
# Rows: CH4 (QM9 #1), H2O (#3), a few from the middle and the very last molecule.
ROWS = [0, 2, 60_000, 100_001, qm9_data.NUM_MOLECULES - 1]


def launch(*args, env=None):
  return subprocess.run([sys.executable, "-m", "launch.qm9", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def molecules():
  return qm9_data.load_molecules(ROWS)


@needs_qm9
def test_loader_returns_consistent_arrays(molecules):
  m = molecules
  n = len(ROWS)
  atoms = qm9_data.MAX_ATOMS
  assert m.species.shape == (n, atoms) and m.coords.shape == (n, atoms, 3)
  assert m.targets.shape == (n, len(qm9_data.TARGETS)) and np.isfinite(m.targets).all()
  assert np.isfinite(m.coords).all()
  assert m.index[:2].tolist() == [1, 3] and m.index[-1] == 133_885
  assert [int((s >= 0).sum()) for s in m.species[:2]] == [5, 3]
  assert m.species[0, :5].tolist() == [1, 0, 0, 0, 0]  # C, H, H, H, H
  # Padding is trailing and sits at the origin.
  real = m.species >= 0
  assert all(r[:r.sum()].all() for r in real) and not m.coords[~real].any()
  t = {name: m.targets[:, k] for k, name in enumerate(qm9_data.TARGETS)}
  np.testing.assert_allclose(t["U0"][0], -40.47893)  # methane, hartree
  assert (t["U0"] < -40).all() and (t["U0"] > -800).all()
  # Thermal corrections: U0 < U < H, and G = H - TS < H.
  assert (t["U0"] < t["U"]).all() and (t["U"] < t["H"]).all() and (t["G"] < t["H"]).all()
  assert ((t["H"] - t["U0"]) < 0.05).all()
  assert (t["homo"] < 0).all() and (t["homo"] < t["lumo"]).all()
  for name in ("alpha", "r2", "zpve", "cv"):
    assert (t[name] > 0).all(), name
  assert (t["mu"] >= 0).all() and (t["mu"] < 30).all()


@needs_qm9
def test_bonds_have_chemical_lengths(molecules):
  xyz = molecules.coords[0, :5]  # methane: C first, then four H
  np.testing.assert_allclose(np.linalg.norm(xyz[1:] - xyz[0], axis=1), 1.09, atol=0.01)


@needs_qm9
def test_split_rows_are_fixed_disjoint_and_nested():
  train, val, test = qm9_data.split_rows(1000)
  assert (len(train), len(val), len(test)) == (800, 100, 100)
  assert len(set(train) | set(val) | set(test)) == 1000
  again = qm9_data.split_rows(1000)
  assert all((a == b).all() for a, b in zip((train, val, test), again))
  bigger = np.concatenate(qm9_data.split_rows(5000))
  assert np.isin(np.concatenate([train, val, test]), bigger).all()


@needs_qm9
def test_descriptors_are_invariant_to_atom_order_rotation_and_translation(molecules):
  species, coords = molecules.species, molecules.coords.astype(np.float64)
  reference = qm9_descriptors.descriptors(species, coords)
  assert reference.shape == (len(ROWS), qm9_descriptors.descriptor_size())
  assert np.isfinite(reference).all()
  rng = np.random.default_rng(0)
  for _ in range(3):
    order = rng.permutation(qm9_data.MAX_ATOMS)  # moves padding between real atoms too
    np.testing.assert_allclose(qm9_descriptors.descriptors(species[:, order], coords[:, order]),
                               reference, rtol=1e-5, atol=1e-4)
  q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
  moved = np.where(species[..., None] >= 0, coords @ q.T + [1.0, -2.0, 3.0], 0.0)
  np.testing.assert_allclose(qm9_descriptors.descriptors(species, moved), reference, rtol=1e-5,
                             atol=1e-4)
  # ... but not blind: different molecules differ.
  assert np.abs(reference[0] - reference[1]).max() > 1


def test_message_passing_trunk_is_invariant_to_atom_order():
  rng = np.random.default_rng(0)
  species = np.array([[1, 0, 0, 0, 3, -1], [2, 0, 0, 0, -1, -1]])
  coords = np.where(species[..., None] >= 0, rng.normal(size=(2, 6, 3)) * 1.5, 0.0)
  trunk = qm9_models.MessagePassingTrunk(width=8, num_interactions=2, num_rbf=6)
  x = qm9_models.atom_inputs(species, coords)
  params = trunk.init(jax.random.key(0), x)["params"]
  out = trunk.apply({"params": params}, x)
  order = rng.permutation(6)
  np.testing.assert_allclose(trunk.apply({"params": params}, x[:, order]), out, rtol=1e-5,
                             atol=1e-5)
  assert np.abs(out[0] - out[1]).max() > 1e-3
  grads = jax.grad(lambda p: jnp.sum(trunk.apply({"params": p}, x)))(params)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@needs_qm9
@pytest.mark.parametrize("atom_reference", [True, False])
def test_metric_is_mae_in_original_units(atom_reference):
  tasks = ("homo", "U0", "cv")
  ts = qm9.qm9(400, tasks, atom_reference=atom_reference, train_steps=5)
  # The transform by hand: a least-squares fit on [counts, 1] (or the mean alone),
  # then the residual's standard deviation, on the training split.
  train_rows, _, test_rows = qm9_data.split_rows(400)
  columns = [qm9_data.TARGETS.index(t) for t in tasks]
  train, test = qm9_data.load_molecules(train_rows), qm9_data.load_molecules(test_rows)
  design = lambda m: np.c_[[[(s == e).sum() for e in range(5)] for s in m.species],
                           np.ones(len(m.species))]
  if atom_reference:
    w = np.linalg.lstsq(design(train), train.targets[:, columns], rcond=None)[0]
  else:
    w = np.r_[np.zeros((5, 3)), train.targets[:, columns].mean(0)[None]]
  scale = (train.targets[:, columns] - design(train) @ w).std(0)
  labels = ts.test.labels
  np.testing.assert_allclose(labels * scale + design(test) @ w, test.targets[:, columns],
                             rtol=1e-6)
  rng = np.random.default_rng(0)
  preds = labels + rng.normal(size=labels.shape).astype(np.float32)
  metric = ts.sample_metrics(jnp.asarray(preds.T[..., None]), jnp.asarray(labels))
  in_original_units = preds * scale + design(test) @ w
  expected = np.abs(in_original_units - test.targets[:, columns]).mean(0)
  np.testing.assert_allclose(np.asarray(metric).mean(0), expected, rtol=1e-4)
  # U0's raw spread is ~40 hartree, its atom-reference residual's ~0.04.
  assert (scale[1] < 0.2) if atom_reference else (scale[1] > 10)


@needs_qm9
def test_mpnn_taskset_trains_one_step():
  ts = qm9.qm9(330, ("U0", "cv"), model="mpnn", mpnn_width=8, train_steps=1)
  assert ts.train.inputs.shape[1:] == (qm9_data.MAX_ATOMS, 8)
  params = ts.init_params(jax.random.key(0))
  batch = next(ts.train.train_batches(ts.batch_size, seed=0))
  assert np.isfinite(np.asarray(ts.task_losses(params, batch))).all()


def test_bad_arguments_are_user_errors():
  with pytest.raises(UserError, match="valid tasks: mu, alpha"):
    qm9_data.check_tasks(["U0", "energy"])
  with pytest.raises(UserError, match="repeat"):
    qm9_data.check_tasks(["U0", "U0"])
  with pytest.raises(UserError, match="subsample"):
    qm9_data.split_rows(qm9_data.NUM_MOLECULES + 1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("qm9") / "run")
  proc = launch(f"--workdir={wd}", "--max_steps=20", "--subsample=500", "--quiet")
  assert proc.returncode == 0, proc.stderr
  return wd


@needs_qm9
def test_launcher_writes_the_contract(tiny_run):
  wd = tiny_run
  gains = json.load(open(os.path.join(wd, "gains.json")))
  # principled runs in its default, marginal form.
  assert gains["tasks"] == list(qm9_data.TARGETS) and gains["measure"] == "principled_marginal"
  assert np.isfinite(np.asarray(gains["gains"])).all() and gains["counts"] == off_diagonal(11, 20)
  groups = json.load(open(os.path.join(wd, "groups.json")))
  assert len(groups["groups"]) == 3
  assert sorted(t for g in groups["groups"] for t in g) == sorted(qm9_data.TARGETS)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "qm9" and report["metric"] == "mae"
  assert set(report["methods"]) == {"principled", "tag", "stl", "mtl_all"}
  assert report["settings"]["taskset"]["arguments"]["subsample"] == 500
  for entry in report["methods"].values():
    assert set(entry["per_task"]) == set(qm9_data.TARGETS)
    assert all(np.isfinite(v["test_metric"]) and v["test_metric"] > 0
               for v in entry["per_task"].values())
  assert report["methods"]["stl"]["delta_m"] == 0.0
  for png in ("gains.png", "results.png"):
    assert os.path.getsize(os.path.join(wd, png)) > 1000


@needs_qm9
@pytest.mark.parametrize("flag,message", [
    ("--tasks=U0,energy", "unknown QM9 task(s) ['energy']; valid tasks: mu, alpha, homo"),
    ("--subsample=100", "--subsample must be between"),
    ("--model=gnn", "model"),
])
def test_launcher_user_errors_exit_2_with_one_line(tmp_path, flag, message):
  proc = launch(f"--workdir={tmp_path / 'run'}", "--max_steps=2", "--quiet", flag)
  assert proc.returncode == 2, proc.stderr
  lines = error_lines(proc)
  assert len(lines) == 1 and message in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr


def test_launcher_without_qm9pack_says_how_to_install(tmp_path):
  # A qm9pack without its data folder stands for a missing package.
  (tmp_path / "qm9pack").mkdir()
  (tmp_path / "qm9pack" / "__init__.py").write_text("")
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(tmp_path), ROOT, os.environ.get("PYTHONPATH", "")])}
  proc = launch(f"--workdir={tmp_path / 'run'}", "--quiet", env=env)
  assert proc.returncode == 2, proc.stderr
  assert error_lines(proc) == [f"error: {qm9_data.INSTALL_HINT}"], proc.stderr
  assert "Traceback" not in proc.stderr


def test_helpshort_lists_every_flag():
  proc = launch("--helpshort")
  for flag in ("subsample", "tasks", "model", "train_steps", "workdir", "methods", "num_groups",
               "seed", "max_steps", "quiet"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag
