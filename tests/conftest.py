"""Shared fixtures: tiny TaskSets that build in milliseconds."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from tgroup import data as data_lib
from tgroup import models
from tgroup.benchmarks import synthetic


def tiny_synthetic(num_clusters=2, tasks_per_cluster=3, *, seed=0, dtype=np.float32, **kw):
  """A small planted problem; ``dtype=np.float64`` gives float64 data and parameters."""
  defaults = dict(num_train=128, num_val=32, num_test=64, batch_size=32, trunk_width=8,
                  input_dim=6, features_per_cluster=6, train_steps=20)
  ts = synthetic.synthetic(num_clusters, tasks_per_cluster, seed=seed, **{**defaults, **kw})
  if dtype == np.float32:
    return ts
  cast = lambda d: data_lib.ArrayDataset(d.inputs.astype(dtype), d.labels.astype(dtype))
  width = ts.model.trunk.widths
  model = models.MultiTaskModel(models.MLPTrunk(width, param_dtype=jnp.float64),
                                models.DenseHead(1, param_dtype=jnp.float64), ts.num_tasks)
  return dataclasses.replace(ts, model=model, train=cast(ts.train), val=cast(ts.val),
                             test=cast(ts.test))


def error_lines(proc) -> list[str]:
  """The ``error: ...`` lines a launcher printed to stderr."""
  return [l for l in proc.stderr.splitlines() if l.startswith("error:")]


def one_line_error(proc) -> str:
  """The one ``error:`` line of a launcher that exited 2 without a traceback."""
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = error_lines(proc)
  assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  return lines[0]


@pytest.fixture
def tiny():
  return tiny_synthetic()


@pytest.fixture
def saved_checkpoints(monkeypatch):
  """step -> the bytes of the collection checkpoint written at that step, for the test's run."""
  from tgroup import checkpoint  # pylint: disable=g-import-not-at-top
  kept = {}
  original_save = checkpoint.save

  def keep(path, tree, record):
    original_save(path, tree, record)
    with open(path, "rb") as f:
      kept[record["step"]] = f.read()

  monkeypatch.setattr(checkpoint, "save", keep)
  return kept
