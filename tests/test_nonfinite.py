"""A training run that diverges: the error names task, step and network; good checkpoints stay."""
import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import one_line_error, tiny_synthetic
from tgroup import checkpoint
from tgroup import evaluate
from tgroup.errors import NonFiniteLossError
from tgroup.gains import CollectConfig, lookahead, run_collection
from tgroup.gains import collect as collect_lib
from tgroup.gains.history import snapshot_steps
from tgroup import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIVERGE_AT = 12  # the learning rate jumps for the 13th update on


def diverging(lr_after):
  """tiny_synthetic with SGD at 0.05 for 12 updates, then at ``lr_after``."""
  schedule = lambda count: jnp.where(count >= DIVERGE_AT, lr_after, 0.05)
  return dataclasses.replace(tiny_synthetic(2, 2), optimizer=optax.sgd(schedule))


def saved_checkpoint(directory, ts, config):
  """(step, whether every array is finite) of the collection checkpoint on disk."""
  state = train.init_state(ts, jax.random.key(0))  # templates: only shapes and dtypes count
  cstate = lookahead.init_collector(jax.random.key(0), ts.num_tasks, config.measures)
  snapshots = collect_lib._empty_snapshots(  # pylint: disable=protected-access
      cstate, len(snapshot_steps(config.steps)))
  tree, record = checkpoint.restore(os.path.join(directory, collect_lib.CHECKPOINT_FILE),
                                    (state, cstate, snapshots))
  floats = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return record["step"], all(bool(jnp.isfinite(x).all()) for x in floats)


# (lr after step 12, checkpoint_every, the step the error names):
# 1e4: the 13th and 14th updates blow the parameters up but keep them finite; the
#   14th's losses reach 1e23, the 15th's are inf: caught at the checkpoint of step 15.
# inf: the 13th update makes the parameters NaN while its losses (of the parameters
#   before it) are finite: the state check before saving checkpoint 13 catches it.
@pytest.mark.parametrize("lr_after, every, named_step", [(1e4, 3, 15), (np.inf, 1, 13)],
                         ids=["blow_up", "nan_update"])
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, lr_after, every, named_step):
  ts = diverging(lr_after)
  config = CollectConfig(measures=("principled",), steps=40, checkpoint_every=every,
                         strategy="vmap", quiet=True)
  directory = str(tmp_path / "ckpt")
  with pytest.raises(NonFiniteLossError) as e:
    run_collection(ts, config, checkpoint_dir=directory)
  message = str(e.value)
  assert re.fullmatch(r"non-finite training loss for task 'c\d_t\d' by step (\d+) \(network of "
                      r"all 4 tasks, collection run\); lower the learning rate or check the "
                      r"labels", message), message
  assert int(re.search(r"by step (\d+)", message).group(1)) == named_step
  step, finite = saved_checkpoint(directory, ts, config)
  assert finite
  assert step == named_step - every and step <= DIVERGE_AT + 3
  # The kept checkpoint resumes, and the rerun fails the same way (no NaN read back).
  with pytest.raises(NonFiniteLossError, match=re.escape(message)):
    run_collection(ts, config, checkpoint_dir=directory)


def test_a_lookahead_that_diverges_alone_is_named_before_a_checkpoint(tmp_path, monkeypatch):
  """Training stays finite; the lookahead steps with an infinite rate from step 13 on."""
  ts = diverging(0.05)  # the same optimizer state structure as the lookahead's
  make_collect_step = lookahead.make_collect_step
  monkeypatch.setattr(lookahead, "make_collect_step", lambda taskset, *a, **kw: make_collect_step(
      dataclasses.replace(taskset, optimizer=diverging(np.inf).optimizer), *a, **kw))
  config = CollectConfig(measures=("tag",), steps=20, checkpoint_every=4, strategy="vmap",
                         quiet=True)
  directory = str(tmp_path / "ckpt")
  with pytest.raises(NonFiniteLossError, match=r"^tag gains are not finite by step 16: a "
                     r"lookahead step diverged"):
    run_collection(ts, config, checkpoint_dir=directory)
  assert saved_checkpoint(directory, ts, config) == (12, True)


def test_group_networks_name_their_group_task_step_and_seed():
  ts = diverging(1e4)
  groups = [(0, 1), (2,), (3,)]
  with pytest.raises(NonFiniteLossError) as e:
    evaluate.train_groups(ts, groups, seeds=(3,), steps=40, chunk_size=4, quiet=True)
  assert re.fullmatch(r"non-finite training loss for task 'c0_t0' by step 40 \(network of "
                      r"group \{c0_t0, c0_t1\}, seed 3\); lower the learning rate or check the "
                      r"labels", str(e.value)), str(e.value)
  # A network trained on one diverging task names that group, not the first network.
  weights = np.array([[1, 1, 0, 0], [0, 0, 1, 0]], np.float32)
  losses = np.array([[1.0, 2.0, np.nan, 3.0], [1.0, 2.0, np.nan, 3.0]])
  with pytest.raises(NonFiniteLossError, match=r"task 'c1_t0' by step 7 \(network of group "
                     r"\{c1_t0\}\)"):
    train.check_finite(ts, losses, weights, 7)


_LAUNCHER = textwrap.dedent("""
    import sys
    import dataclasses
    import jax.numpy as jnp
    import optax
    from launch import cli
    from tgroup import pipeline
    from tgroup.benchmarks.synthetic import synthetic
    from tgroup.gains import CollectConfig
    from tgroup.grouping import Constraints

    def main(argv):
      ts = synthetic(2, 2, num_train=128, num_val=32, num_test=32, batch_size=32,
                     train_steps=40, trunk_width=8, input_dim=6, features_per_cluster=6)
      schedule = lambda count: jnp.where(count >= 12, 1e4, 0.05)
      ts = dataclasses.replace(ts, optimizer=optax.sgd(schedule)).with_definition({"test": "nan"})
      config = pipeline.PipelineConfig(
          methods=("principled", "stl"), constraints=Constraints(num_groups=2),
          collect=CollectConfig(checkpoint_every=5), quiet=True)
      pipeline.run_pipeline(ts, config, workdir)

    workdir = sys.argv.pop()
    sys.argv += ["--compilation_cache=", "--quiet"]
    cli.run(main)
""")


def test_the_launcher_path_prints_one_line_and_exits_2(tmp_path):
  workdir = str(tmp_path / "run")
  proc = subprocess.run([sys.executable, "-c", _LAUNCHER, workdir], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  line = one_line_error(proc)
  assert re.fullmatch(r"error: non-finite training loss for task 'c\d_t\d' by step 15 .*",
                      line), line
  found = [os.path.join(d, f) for d, _, fs in os.walk(workdir) for f in fs
           if f == collect_lib.CHECKPOINT_FILE]
  assert len(found) == 1  # kept for a rerun, with the last good state
  with np.load(found[0]) as npz:
    assert all(np.isfinite(npz[k]).all() for k in npz.files
               if k.startswith("leaf") and npz[k].dtype.kind == "f")
