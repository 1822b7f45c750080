"""Rollouts of the routing solver: feasible solutions whose objective the checker agrees with."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tgroup.benchmarks.cop import env as env_lib
from tgroup.benchmarks.cop import instances
from tgroup.benchmarks.cop import model as model_lib
from tgroup.benchmarks.cop import problems

TASKS = [instances.Task(p, 11) for p in instances.PROBLEMS]


def random_rollout(task, batch, starts, seed, sample=None):
  """A rollout whose logits are noise: every feasible action gets some probability.

  ``sample``: ``(batch,)`` 1 to sample, 0 for greedy; None: all sampled.
  """
  inst = instances.generate(task, jax.random.key(seed), batch)
  n = task.num_nodes
  scores = jax.random.normal(jax.random.key(seed + 1), (batch, starts, n))
  env = env_lib.ENVS[task.problem]
  logits_of = lambda state: (scores, env.feasible(inst, state))
  keys = jax.random.split(jax.random.key(seed + 2), batch)
  sample = jnp.ones(batch) if sample is None else jnp.asarray(sample, jnp.float32)
  out = jax.jit(lambda i, k, s: model_lib.rollout(task, i, starts, logits_of, k, s))(
      inst, keys, sample)
  return inst, *out


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_rollouts_are_feasible_and_scored_right(task):
  batch, starts = 6, 4
  inst, logp, objective, actions = random_rollout(task, batch, starts, seed=task.size,
                                                  sample=[1, 0] * (batch // 2))
  assert np.all(np.asarray(logp) <= 1e-5) and np.isfinite(np.asarray(logp)).all()
  for b in range(batch):
    one = {k: np.asarray(v[b]) for k, v in inst.items()}
    for p in range(starts):
      solution = env_lib.decode_solution(task.problem, np.asarray(actions[b, p]))
      problems.check(task.problem, one, solution)
      assert float(objective[b, p]) == pytest.approx(
          problems.objective(task.problem, one, solution), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("task", [t for t in TASKS if t.problem in ("tsp", "cvrp")],
                         ids=lambda t: t.name)
def test_every_node_is_served(task):
  _, _, _, actions = random_rollout(task, 6, 4, seed=7)
  for row in np.asarray(actions).reshape(-1, actions.shape[-1]):
    served = {int(a) for a in row if a >= (task.problem == "cvrp")}
    assert served == set(range(task.problem == "cvrp", task.num_nodes))


def test_pomo_starts_are_forced():
  task = instances.Task("tsp", 11)
  _, _, _, actions = random_rollout(task, 6, 4, seed=3)
  np.testing.assert_array_equal(np.asarray(actions[:, :, 0]), np.tile(np.arange(4), (6, 1)))


def test_greedy_decoding_ignores_the_keys():
  task = instances.Task("cvrp", 11)
  greedy = [0] * 6
  first = random_rollout(task, 6, 4, seed=0, sample=greedy)[3]
  # Other sampling keys (the seed moves them), same instances and scores.
  inst = instances.generate(task, jax.random.key(0), 6)
  scores = jax.random.normal(jax.random.key(1), (6, 4, task.num_nodes))
  env = env_lib.ENVS["cvrp"]
  other = model_lib.rollout(task, inst, 4, lambda s: (scores, env.feasible(inst, s)),
                            jax.random.split(jax.random.key(99), 6), jnp.zeros(6))[2]
  np.testing.assert_array_equal(np.asarray(first), np.asarray(other))
  sampled = random_rollout(task, 6, 4, seed=0)[3]
  assert not np.array_equal(np.asarray(first), np.asarray(sampled))


def test_a_full_knapsack_stops_without_probability():
  task = instances.Task("kp", 13)
  inst = {"weights": jnp.full((1, 13), 0.9), "values": jnp.linspace(0.1, 1, 13)[None],
          "capacity": jnp.array([2.0])}
  env = env_lib.ENVS["kp"]
  scores = jnp.zeros((1, 2, 13))
  logp, objective, actions = model_lib.rollout(
      task, inst, 2, lambda s: (scores, env.feasible(inst, s)), jax.random.split(
          jax.random.key(0), 1), jnp.ones(1))
  assert [len(env_lib.decode_solution("kp", a)) for a in np.asarray(actions[0])] == [2, 2]
  # Each start chose one of 12 equally likely items, then nothing fitted.
  np.testing.assert_allclose(np.asarray(logp), np.log(1 / 12), rtol=1e-5)
