"""The collect stage of a pipeline run: gains given, reused, or collected once.

:func:`collect_for_run` takes the gains a caller collected already, collects
the rest in one run, and writes them all to the workdir.

A pipeline run writes every collected measure to ``gains_<measure>.json`` with
its identity (:func:`tgroup.identity.gains_identity`: the TaskSet's definition
and the collection settings) and the running means to ``gains_history.json``.
A rerun with the same identity reads them back instead of collecting; a run
with the same identity that was interrupted resumes its checkpoint, which
lives in a folder of its own per identity. Without an identity (a TaskSet with
no definition) nothing is reused and no checkpoint is kept.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Mapping, NamedTuple

from absl import logging

from tgroup import identity as identity_lib
from tgroup import plots
from tgroup.errors import UserError
from tgroup.gains import history as history_lib
from tgroup.gains.collect import CollectConfig, clear_checkpoint, run_collection
from tgroup.gains.gains import Gains
from tgroup.tasks import TaskSet

HISTORY_FILE = "gains_history.json"


class Collected(NamedTuple):
  """Gains by measure, the collection run's wall time, and its histories (may be empty)."""
  gains: dict[str, Gains]
  seconds: float
  histories: dict[str, history_lib.GainsHistory]


def collect_or_reuse(taskset: TaskSet, config: CollectConfig, workdir: str) -> Collected:
  """Reuses ``gains_<measure>.json`` written by an identical earlier run; else collects.

  Collecting resumes the checkpoint an interrupted identical run left. The
  histories are empty when reused gains have no history of the same run.
  """
  key = identity_lib.gains_identity(taskset, config.settings(taskset))
  paths = {x: os.path.join(workdir, f"gains_{x}.json") for x in config.measures}
  history_path = os.path.join(workdir, HISTORY_FILE)
  # One directory per identity: a rerun with other settings never meets this
  # run's checkpoint, and coming back to these settings resumes it.
  checkpoint_dir = (os.path.join(workdir, "checkpoints", "collect", identity_lib.digest(key))
                    if key is not None else None)
  if key is not None and all(os.path.exists(p) for p in paths.values()):
    saved = {x: Gains.load(p) for x, p in paths.items()}
    if all(g.settings.get("key") == _as_json(key) for g in saved.values()):
      logging.info("reusing gains saved in %s", workdir)
      clear_checkpoint(checkpoint_dir, workdir)  # left by a run killed after saving its gains
      return Collected(saved, float(next(iter(saved.values())).settings.get("seconds", 0.0)),
                       _saved_histories(history_path, key))
  start = time.perf_counter()
  collected = run_collection(taskset, config, checkpoint_dir=checkpoint_dir, identity=key)
  seconds = time.perf_counter() - start
  gains = dict(collected.gains)
  # Before the gains files: gains a rerun reuses always come with their history.
  history_lib.save_histories(history_path, list(collected.histories.values()), key=key)
  for x, g in gains.items():
    gains[x] = dataclasses.replace(g, settings=dict(g.settings, key=key))
    gains[x].save(paths[x])
  if checkpoint_dir is not None:
    clear_checkpoint(checkpoint_dir, workdir)  # the gains files are the resume point now
  return Collected(gains, seconds, collected.histories)


def collect_for_run(taskset: TaskSet, cc: CollectConfig, workdir: str,
                    given: Mapping[str, Gains]) -> Collected:
  """The gains of ``cc.measures``: given by the caller, reused from workdir, or collected.

  Given gains are written to ``gains_<measure>.json`` like collected ones; the
  rest are collected in one run (or reused) and ``gains_over_time.png`` drawn
  for the first measure when its history is known.
  """
  for measure, g in given.items():
    if tuple(g.tasks) != tuple(taskset.tasks):
      raise UserError(f"the given {measure} gains are for tasks {list(g.tasks)}, the TaskSet's "
                      f"are {list(taskset.tasks)}")
  missing = tuple(x for x in cc.measures if x not in given)
  collected = Collected({}, 0.0, {})
  if missing:
    collected = collect_or_reuse(taskset, dataclasses.replace(cc, measures=missing), workdir)
  gains = {x: given[x] if x in given else collected.gains[x] for x in cc.measures}
  for x in cc.measures:
    if x in given:
      gains[x].save(os.path.join(workdir, f"gains_{x}.json"))
  seconds = collected.seconds if missing else float(
      next(iter(gains.values())).settings.get("seconds", 0.0))
  _plot_history(taskset, cc.measures[0], workdir, collected.histories)
  return Collected(gains, seconds, collected.histories)


def _plot_history(taskset: TaskSet, measure: str, workdir: str,
                  histories: Mapping[str, history_lib.GainsHistory]) -> None:
  """gains_over_time.png for the first gain measure, when its history is known."""
  if measure not in histories:
    logging.info("no gains history of this run in %s: gains_over_time.png not written", workdir)
    return
  h = histories[measure]
  stable = h.stable_step()
  settled = ("" if stable is None else f" (ρ ≥ {history_lib.STABLE_CORRELATION:g} from step "
             f"{stable} of {int(h.steps[-1])})")
  plots.gains_over_time(h, os.path.join(workdir, "gains_over_time.png"), close=True,
                        title=f"{taskset.name}: {measure} gains over training steps{settled}")


def _as_json(value):
  return json.loads(json.dumps(value))


def _saved_histories(path: str, key: dict) -> dict[str, history_lib.GainsHistory]:
  """The histories in ``path`` if the run with this identity wrote them, else {}."""
  if not os.path.exists(path):
    return {}
  try:
    histories, rest = history_lib.load_histories(path)
  except UserError as e:  # only a figure depends on it: not worth failing the run
    logging.warning("ignoring the gains history: %s", e)
    return {}
  return histories if rest.get("key") == _as_json(key) else {}
