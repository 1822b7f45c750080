"""The study suite's problems and its table (``python -m launch.study``; docs/results.md, Study).

Planted problems of varied structure (2 to 4 families, unequal family sizes, ReLU
and tanh trunks, regression and classification, unequal task noise, SGD with
momentum and Adam), digits, and QM9 at reduced size. Every problem is small
enough for the oracle (at most 8 tasks), so every method gets its regret: its
total test loss minus the oracle's with as many groups. Planted problems also
give recovery: how often a method's groups are the planted families.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from tgroup import methods as methods_lib
from tgroup.gains import CollectConfig
from tgroup.grouping import Constraints

# Both principled forms run side by side, each under a name of its own.
PRINCIPLED_SELF_PAIR = dataclasses.replace(methods_lib.PRINCIPLED_FORMS["self_pair"],
                                           name="principled_self_pair")
PRINCIPLED_MARGINAL = dataclasses.replace(methods_lib.PRINCIPLED_FORMS["marginal"],
                                          name="principled_marginal")
METHODS = (PRINCIPLED_SELF_PAIR, PRINCIPLED_MARGINAL, "tag", "cosine", "first_order", "hoa",
           "landscape", "calibrated", "random", "oracle", "stl", "mtl_all")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One problem of the suite.

  Attributes:
    name: its name in the table and its runs' directory names.
    build: ``build(seed) -> TaskSet``.
    num_groups: the number of groups every method is asked for.
    description: what varies, in words.
  """
  name: str
  build: Callable
  num_groups: int
  description: str


def _planted(name, family_sizes, description, quick=False, **settings) -> Problem:
  from tgroup.benchmarks.synthetic import planted  # pylint: disable=g-import-not-at-top
  sizes = (dict(num_train=128, num_val=64, num_test=64, batch_size=32, train_steps=20)
           if quick else {})
  return Problem(name, lambda seed: planted(family_sizes, seed=seed, **sizes, **settings),
                 len(family_sizes), description)


def _digits(seed: int):
  del seed  # the split is fixed; the seed moves initialisation and batches
  from tgroup.benchmarks.digits import digits  # pylint: disable=g-import-not-at-top
  return digits()


QM9_TASKS = ("mu", "homo", "lumo", "U0", "U", "cv")


def reduced_qm9(seed: int):
  """QM9 at the study's reduced size (4,000 molecules, 6 targets, a small MLP)."""
  del seed  # the subsample and split are fixed
  from tgroup.benchmarks.qm9 import qm9  # pylint: disable=g-import-not-at-top
  return qm9(subsample=4000, tasks=QM9_TASKS, hidden=(64, 64), train_steps=800)


def suite(quick: bool = False) -> list[Problem]:
  """The problems, in table order.

  Examples:
    >>> [p.name for p in suite(quick=True)]
    ['quick_relu_reg_sgd', 'quick_tanh_cls_adam']
  """
  if quick:
    return [
        _planted("quick_relu_reg_sgd", (2, 2), "2×2, ReLU, regression, SGD", quick=True),
        _planted("quick_tanh_cls_adam", (2, 1, 1), "2+1+1, tanh, classification, Adam",
                 quick=True, task="classification", trunk_activation="tanh", optimizer="adam"),
    ]
  noisy = lambda m: tuple(np.round(np.linspace(0.1, 0.9, m), 3).tolist())
  return [
      _planted("p2_relu_reg_sgd", (3, 3), "2 families of 3, ReLU, regression, SGD momentum"),
      _planted("p3_tanh_reg_adam", (2, 2, 2), "3 families of 2, tanh, regression, Adam",
               trunk_activation="tanh", optimizer="adam"),
      # Classification at 4,096 training samples: at 1,024 every network overfits and larger
      # groups always win, so there is no planted structure left to recover.
      _planted("p2u_relu_cls_adam", (4, 2), "families of 4 and 2, ReLU, classification, Adam",
               task="classification", optimizer="adam", num_train=4096),
      _planted("p3u_tanh_reg_sgd_noise", (3, 2, 2), "families of 3, 2, 2, tanh, regression, "
               "SGD momentum, task noise 0.1 to 0.9", trunk_activation="tanh", noise=noisy(7)),
      _planted("p4_relu_cls_sgd_noise", (2, 2, 2, 2), "4 families of 2, ReLU, classification, "
               "SGD momentum, task noise 0.1 to 0.9", task="classification", noise=noisy(8),
               num_train=4096),
      Problem("digits", _digits, 3, "scikit-learn digits, 6 attributes, MLP, Adam"),
      Problem("qm9", reduced_qm9, 3, f"QM9, 4,000 molecules, {len(QM9_TASKS)} targets, "
              "descriptors MLP, 800 steps"),
  ]


def run_one(problem: Problem, seed: int, workdir: str, quiet: bool = True,
            landscape_warmup_steps: int = 0) -> dict:
  """One pipeline run of every method; its report."""
  from tgroup import pipeline  # pylint: disable=g-import-not-at-top
  taskset = problem.build(seed)
  config = pipeline.PipelineConfig(
      methods=METHODS, constraints=Constraints(num_groups=problem.num_groups),
      collect=CollectConfig(seed=seed, quiet=quiet), eval_seeds=(seed,), quiet=quiet,
      landscape=methods_lib.LandscapeConfig(warmup_steps=landscape_warmup_steps))
  return pipeline.run_pipeline(taskset, config, workdir)


def summarise(reports: dict[str, list[dict]]) -> dict:
  """Per method: mean regret per problem and overall, planted recoveries, networks.

  Args:
    reports: problem name -> its runs' reports (one per seed).

  Returns:
    ``{"methods": {method: {"regret": {problem: mean}, "mean_regret", "recovered",
    "planted_runs", "networks"}}, "problems": [...], "oracle_planted": {problem: k}}``;
    a mean over no comparable run is None.

  Examples:
    >>> r = lambda g, t: {"ground_truth_groups": [["a"], ["b"]], "methods": {
    ...     "x": {"regret": g, "matches_ground_truth": t, "cost": {"networks": 1}},
    ...     "oracle": {"regret": 0.0, "matches_ground_truth": True, "cost": {"networks": 3}}}}
    >>> s = summarise({"p": [r(0.5, False), r(0.0, True)]})
    >>> s["methods"]["x"]["regret"], s["methods"]["x"]["recovered"], s["oracle_planted"]
    ({'p': 0.25}, 1, {'p': 2})
  """
  mean = lambda xs: float(np.mean(xs)) if xs else None
  methods = list(dict.fromkeys(m for runs in reports.values() for r in runs for m in r["methods"]))
  out = {"problems": list(reports), "methods": {}, "oracle_planted": {}}
  for name, runs in reports.items():
    if runs and "ground_truth_groups" in runs[0] and "oracle" in runs[0]["methods"]:
      out["oracle_planted"][name] = sum(
          bool(r["methods"]["oracle"].get("matches_ground_truth")) for r in runs)
  for method in methods:
    per_problem, every, recovered, planted_runs, networks = {}, [], 0, 0, []
    for name, runs in reports.items():
      entries = [r["methods"][method] for r in runs if method in r["methods"]]
      regrets = [e["regret"] for e in entries if e.get("regret") is not None]
      per_problem[name] = mean(regrets)
      every += regrets
      networks += [e["cost"]["networks"] for e in entries if e.get("cost")]
      if runs and "ground_truth_groups" in runs[0]:
        planted_runs += len(entries)
        recovered += sum(bool(e.get("matches_ground_truth")) for e in entries)
    out["methods"][method] = {"regret": per_problem, "mean_regret": mean(every),
                              "recovered": recovered, "planted_runs": planted_runs,
                              "networks": mean(networks)}
  return out


def table(summary: dict) -> list[str]:
  """The summary as a Markdown table: a row per method, a column per problem."""
  problems = summary["problems"]
  lines = ["| method | " + " | ".join(problems) + " | mean regret | planted recovered | "
           "networks beyond STL (mean) |", "|---|" + "---|" * (len(problems) + 3)]
  number = lambda x: "n/a" if x is None else f"{x:+.4f}"
  for method, s in summary["methods"].items():
    recovered = f"{s['recovered']}/{s['planted_runs']}" if s["planted_runs"] else "n/a"
    networks = "n/a" if s["networks"] is None else f"{s['networks']:.1f}"
    lines.append(f"| {method} | " + " | ".join(number(s["regret"][p]) for p in problems)
                 + f" | {number(s['mean_regret'])} | {recovered} | {networks} |")
  return lines


