"""Network costs measured by XLA, checked against independent counts."""
import json

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

from tgroup import costs
from tgroup import data as data_lib
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.benchmarks.synthetic import synthetic
from tgroup.errors import UserError

BATCH = 64


def labels(n, m):
  return np.random.default_rng(0).normal(size=(n, m)).astype(np.float32)


def mlp_taskset(in_dim=5, widths=(12, 7), out=3, m=4):
  return tasks_lib.TaskSet(
      name="toy", tasks=tuple(f"t{i}" for i in range(m)),
      model=models.MultiTaskModel(models.MLPTrunk(widths), models.DenseHead(out), m),
      sample_losses=tasks_lib.squared_error, sample_metrics=tasks_lib.absolute_error,
      train=data_lib.ArrayDataset(np.zeros((8, in_dim), np.float32), labels(8, m)),
      test=data_lib.ArrayDataset(np.zeros((4, in_dim), np.float32), labels(4, m)),
      optimizer=optax.sgd(0.1), batch_size=4)


def layer_sizes(in_dim, widths):
  dims = (in_dim, *widths)
  return list(zip(dims[:-1], dims[1:]))


@pytest.mark.parametrize("in_dim,widths,out", [(5, (12, 7), 3), (16, (16, 16), 1), (3, (9,), 2)])
def test_params_match_an_independent_count(in_dim, widths, out):
  ts = mlp_taskset(in_dim, widths, out)
  trunk = sum(i * o + o for i, o in layer_sizes(in_dim, widths))
  for k in (1, 2, 4):
    head = widths[-1] * out + out
    assert costs.measure_network(ts, k, batch_size=BATCH).params == trunk + k * head
  # ... and the parameters a real initialisation of the m-head model has.
  real = sum(x.size for x in jax.tree.leaves(ts.init_params(jax.random.key(0))))
  assert costs.measure_network(ts, ts.num_tasks, batch_size=BATCH).params == real


def test_flops_are_the_matmuls_plus_elementwise_work():
  in_dim, widths, out = 5, (12, 7), 3
  ts = mlp_taskset(in_dim, widths, out)
  for k in (1, 3):
    macs = sum(i * o for i, o in layer_sizes(in_dim, widths)) + k * widths[-1] * out
    elementwise = 2 * sum(widths) + k * out  # bias adds and ReLUs, heads' bias adds
    flops = costs.measure_network(ts, k, batch_size=BATCH).flops
    assert 2 * BATCH * macs <= flops <= BATCH * (2 * macs + elementwise)


def test_costs_are_positive_and_grow_with_the_number_of_heads():
  ts = synthetic(3, 3, num_train=64, num_val=8, num_test=8)
  measured = [costs.measure_network(ts, k, batch_size=BATCH) for k in range(1, 10)]
  for model in ("flops", "memory", "params"):
    values = [c.value(model) for c in measured]
    assert all(v > 0 for v in values), model
    assert all(a < b for a, b in zip(values, values[1:])), (model, values)
  assert all(c.value("uniform") == 1.0 for c in measured)


def test_half_size_networks_are_cheaper_and_halve_the_trunk():
  ts = mlp_taskset(5, (12, 7), 3)
  full, half = (costs.measure_network(ts, 1, batch_size=BATCH, half_size=h) for h in (False, True))
  assert half.params == (5 * 6 + 6) + (6 * 4 + 4) + (4 * 3 + 3)
  for model in ("flops", "memory", "params"):
    assert 0 < half.value(model) < full.value(model)


def test_measured_costs_compile_once_per_size_and_keep_group_order():
  ts = mlp_taskset()
  groups = [(0, 1), (2,), (1, 3), (0, 1, 2, 3)]
  params = costs.measured_costs(ts, groups, "params", batch_size=BATCH)
  assert params[0] == params[2] and params[1] < params[0] < params[3]
  assert costs.measured_costs(ts, groups, "uniform").tolist() == [1.0] * 4
  with pytest.raises(UserError, match="unknown cost model 'watts'"):
    costs.measured_costs(ts, groups, "watts")


def test_a_trunk_without_a_width_cannot_be_halved():
  class Plain(nn.Module):  # no widths or width field
    def __call__(self, x):
      return x
  with pytest.raises(UserError, match="cannot halve Plain"):
    costs.half_width(Plain())


def write(tmp_path, value, name="costs.json"):
  path = tmp_path / name
  path.write_text(value if isinstance(value, str) else json.dumps(value))
  return str(path)


def test_costs_from_json_per_task_with_base_and_group_overrides(tmp_path):
  path = write(tmp_path, {"base": 2.0, "per_task": {"a": 1.0, "b": 0.5, "c": 3.0},
                          "groups": [{"tasks": ["b", "a"], "cost": 10.0}]})
  got = costs.costs_from_json(path, ["a", "b", "c"], [(0,), (0, 1), (1, 2), (0, 1, 2)])
  assert got.tolist() == [3.0, 10.0, 5.5, 6.5]


@pytest.mark.parametrize("content,message", [
    ('{"per_task": {"a": 1,\n "b": }}', r"costs.json, line 2: not valid JSON"),
    ({"per_task": {"a": 1, "zz": 2}}, r"unknown task 'zz'"),
    ({"per_task": {"a": -1, "b": 1}}, r"cost of a must be a finite number >= 0"),
    ({"per_task": {"a": 1}}, r"gives no cost for the network \['a', 'b'\]"),
    ({"something": 1}, r"expected an object with 'per_task' and/or 'groups'"),
    ({"groups": [{"tasks": ["a"]}]}, r"needs 'tasks' and 'cost'"),
])
def test_costs_from_json_errors_name_the_cause(tmp_path, content, message):
  path = write(tmp_path, content)
  with pytest.raises(UserError, match=message):
    costs.costs_from_json(path, ["a", "b"], [(0, 1)])


def test_costs_from_json_missing_file(tmp_path):
  with pytest.raises(UserError, match="cannot read costs file"):
    costs.costs_from_json(str(tmp_path / "nope.json"), ["a"], [(0,)])
