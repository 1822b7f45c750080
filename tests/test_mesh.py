"""The --mesh specification: parsing, checks before any work, each stage's axes."""
import functools
import itertools

import numpy as np
import pytest

from tgroup import mesh as mesh_lib
from tgroup.benchmarks.tfds_source import RecordDataset
from tgroup.data import ArrayDataset
from tgroup.errors import UserError

MeshSpec = mesh_lib.MeshSpec


@pytest.mark.parametrize("text, sizes", [
    ("data:8", (8, 1, 1)), ("combos:8", (1, 8, 1)), ("networks:8", (1, 1, 8)),
    ("data:4,combos:2", (4, 2, 1)), (" combos:2 , data:2 ", (2, 2, 1)),
    ("data:2,combos:2,networks:2", (2, 2, 2)), ("data:1", (1, 1, 1))])
def test_parse(text, sizes):
  spec = MeshSpec.parse(text)
  assert (spec.data, spec.combos, spec.networks) == sizes and not spec.auto
  assert MeshSpec.parse(str(spec)) == spec


def test_no_mesh_and_auto():
  assert MeshSpec.parse(None) is None and MeshSpec.parse("") is None
  assert MeshSpec.parse("auto").auto and str(MeshSpec.parse("auto")) == "auto"


@pytest.mark.parametrize("text, says", [
    ("model:2", "unknown axis 'model'"), ("data:2,data:2", "repeats the axis 'data'"),
    ("data", "needs a size"), ("data:0", "needs a size"), ("data:x", "needs a size"),
    ("data:-2", "needs a size"), ("data:2,", "unknown axis ''")])
def test_bad_specs_are_one_line_user_errors(text, says):
  with pytest.raises(UserError, match=says) as e:
    MeshSpec.parse(text)
  assert "\n" not in str(e.value)


def test_check_before_any_work():
  MeshSpec(data=4, combos=2).check(8, batch_size=32, chunk_size=16)
  with pytest.raises(UserError, match="spans 8 devices, but this run has 4"):
    MeshSpec(data=4, combos=2).check(4, batch_size=32, chunk_size=16)
  with pytest.raises(UserError, match="batch size 30 cannot be split over .* data axis of 4"):
    MeshSpec(data=4, combos=2).check(8, batch_size=30, chunk_size=16)
  with pytest.raises(UserError, match="chunk of 12 networks cannot be split"):
    MeshSpec(networks=8).check(8, batch_size=30, chunk_size=12)
  MeshSpec(auto=True).check(3, batch_size=7, chunk_size=5)  # auto fits itself to any run


@pytest.mark.parametrize("stage, batch, chunk, want", [
    ("collect", 32, 16, MeshSpec(combos=8)),
    ("train", 32, 16, MeshSpec(networks=8)),
    ("train", 32, 12, MeshSpec(data=8)),     # the chunk does not split: the batch does
    ("train", 30, 12, MeshSpec()),           # neither splits: one device
    ("landscape", 32, 16, MeshSpec(data=8)),
    ("landscape", 30, 16, MeshSpec())])
def test_auto_picks_an_axis_per_stage(stage, batch, chunk, want):
  assert MeshSpec(auto=True).for_stage(stage, 8, batch_size=batch, chunk_size=chunk) == want


def test_an_explicit_mesh_is_the_same_for_every_stage():
  spec = MeshSpec(data=2, combos=4)
  assert all(spec.for_stage(s, 8, batch_size=2, chunk_size=1) is spec for s in mesh_lib.STAGES)


def test_no_mesh_or_one_device_is_no_mesh():
  assert mesh_lib.stage_mesh(None, "collect", batch_size=32) is None
  assert mesh_lib.stage_mesh(MeshSpec(), "collect", batch_size=32) is None
  assert mesh_lib.stage_mesh(MeshSpec(auto=True), "collect", batch_size=32) is None  # 1 device


def records(n):
  source = [{"x": i} for i in range(n)]
  to_arrays = lambda exs: (np.array([[e["x"]] for e in exs]), np.arange(len(exs))[:, None] * 1.0)
  return RecordDataset(source, to_arrays, workers=1)


class WholeBatchesOnly:
  """A user's loader that knows nothing of rows."""

  def __init__(self, dataset):
    self.dataset = dataset

  def train_batches(self, batch_size, seed):
    return self.dataset.train_batches(batch_size, seed=seed)

  def eval_batches(self, batch_size):
    return self.dataset.eval_batches(batch_size)


@pytest.mark.parametrize("dataset", [
    ArrayDataset(np.arange(10.0)[:, None], np.arange(10.0)[:, None]), records(10),
    WholeBatchesOnly(records(10))], ids=["array", "records", "whole_batches_only"])
@pytest.mark.parametrize("rows", [slice(0, 2), slice(2, 4), slice(1, 3)])
def test_a_process_reads_its_rows_of_every_batch(dataset, rows):
  """Reading a share equals reading whole batches and cutting them (padding included)."""
  cut = lambda batches: [[np.asarray(x)[rows].tolist() for x in b] for b in batches]
  as_lists = lambda batches: [[np.asarray(x).tolist() for x in b] for b in batches]
  train = lambda **rows: itertools.islice(
      mesh_lib.read(functools.partial(dataset.train_batches, 4, seed=3), **rows), 5)
  assert as_lists(train(rows=rows)) == cut(train(rows=None))
  evaluate = lambda **rows: mesh_lib.read(functools.partial(dataset.eval_batches, 4), **rows)
  assert as_lists(evaluate(rows=rows)) == cut(evaluate(rows=None))  # 10 = 4 + 4 + 2 and padding
