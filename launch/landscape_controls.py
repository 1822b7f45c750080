r"""Controls for the landscape dissimilarity: is it a label statistic on these benchmarks?

For each benchmark (default TaskSet, or its generated stand-in), at the
landscape method's default θ_0 (a random initialisation, every head a copy of
one head), prints one Markdown row:

- R² of ``D_ij ≈ h_i + h_j + c · disagree_ij`` over task pairs, and of the
  offsets ``h_i + h_j`` alone (:func:`tgroup.landscape.controls.additive_fit`;
  disagreement: the rate at which two tasks' labels differ, or the mean absolute
  difference of standardised real-valued labels);
- the same R² with the training inputs replaced by Gaussian noise (labels kept),
  and the correlation between the two dissimilarities;
- the landscape groups (``--num_groups``) on the real and on the noise inputs.

  python -m launch.landscape_controls --workdir=/tmp/tgroup_runs/landscape_controls

``--head_init=independent`` draws each head (the dissimilarity then also sees
the heads' random differences); ``--warmup_steps=N`` measures at the all-task
network after N training steps instead (the noise control then trains on the
noise inputs too). ETT's generated CSV is written into WORKDIR.
"""
import os

from absl import flags
import jax
import numpy as np

from launch import cli
from tgroup.errors import UserError

BENCHMARKS = ("synthetic", "digits", "ett", "qm9")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for generated data (ETT's CSV).")
_BENCHMARKS = flags.DEFINE_list("benchmarks", list(BENCHMARKS),
                                f"Comma list among {', '.join(BENCHMARKS)}.")
_SAMPLES = flags.DEFINE_integer("samples", 256, "Training samples the dissimilarity reads.")
_NUM_GROUPS = flags.DEFINE_integer("num_groups", 3, "Landscape groups compared.")
_HEAD_INIT = flags.DEFINE_enum("head_init", "same", ["same", "independent"],
                               "θ_0's heads: copies of one (the default) or each its own draw.")
_SEED = flags.DEFINE_integer("seed", 0, "θ_0, the noise inputs and the grouping's key.")
_WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", 0, "0: a random θ_0. N: θ_0 is the all-task network after N training steps "
    "(on the noise inputs, for the noise control: the whole measure is repeated on them).")


def taskset_of(name: str, workdir: str):
  """The benchmark's default TaskSet (ETT: the generated file, written into ``workdir``)."""
  if name == "synthetic":
    from tgroup.benchmarks.synthetic import synthetic  # pylint: disable=g-import-not-at-top
    return synthetic(3, 3, rho=1.0)
  if name == "digits":
    from tgroup.benchmarks.digits import digits  # pylint: disable=g-import-not-at-top
    return digits()
  if name == "ett":
    from tgroup.benchmarks import ett  # pylint: disable=g-import-not-at-top
    path = ett.generate_csv(os.path.join(workdir, "ett_generated_m.csv"), "m", seed=0)
    return ett.ett(path)
  if name == "qm9":  # the study's reduced QM9 (launch.study); needs the qm9 extra
    from tgroup import study  # pylint: disable=g-import-not-at-top
    return study.reduced_qm9(0)
  raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")


def row(name: str, workdir: str) -> str:
  from tgroup import train  # pylint: disable=g-import-not-at-top
  from tgroup.landscape import cluster, controls, measure  # pylint: disable=g-import-not-at-top
  ts = taskset_of(name, workdir)
  seed, samples = _SEED.value, _SAMPLES.value
  def dissimilarity(t):
    theta0 = train.all_task_params(t, _WARMUP_STEPS.value, seed) if _WARMUP_STEPS.value else None
    return measure.landscape_dissimilarity(
        t, num_samples=samples, init_seeds=(seed,), params=theta0,
        batch_size=min(samples, 256), head_init=_HEAD_INIT.value)
  labels = controls.training_labels(ts, samples)
  disagree = controls.label_disagreement(labels)
  d = dissimilarity(ts)
  noisy = dissimilarity(controls.noise_inputs(ts, seed))
  fit, fit_noise = controls.additive_fit(d, disagree), controls.additive_fit(noisy, disagree)
  i, j = np.triu_indices(ts.num_tasks, 1)
  corr = float(np.corrcoef(d[i, j], noisy[i, j])[0, 1])
  key = jax.random.key(seed)
  groups = lambda x: cluster.landscape_groups(x, ts.tasks, key, num_groups=_NUM_GROUPS.value)[
      "groups"]
  real, noise = groups(d), groups(noisy)
  text = lambda gs: " ".join("{" + ",".join(g) + "}" for g in gs)
  same = sorted(map(sorted, real)) == sorted(map(sorted, noise))
  return (f"| {name} | {ts.num_tasks} | {fit.r2:.4f} | {fit.r2_offsets:.4f} | "
          f"{fit_noise.r2:.4f} | {corr:.4f} | {text(real)} | {'same' if same else text(noise)} |")


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise UserError("--workdir is required")
  unknown = [b for b in _BENCHMARKS.value if b not in BENCHMARKS]
  if unknown or not _BENCHMARKS.value:
    raise UserError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
  if _SAMPLES.value < 1 or _NUM_GROUPS.value < 1 or _WARMUP_STEPS.value < 0:
    raise UserError("--samples and --num_groups must be >= 1, --warmup_steps >= 0")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  print("| benchmark | tasks | R² (offsets + disagreement) | R² (offsets) | R², noise inputs | "
        "corr(D, D on noise) | landscape groups | on noise inputs |")
  print("|---|---|---|---|---|---|---|---|")
  for name in _BENCHMARKS.value:
    print(row(name, _WORKDIR.value), flush=True)


if __name__ == "__main__":
  cli.run(main)
