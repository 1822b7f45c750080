"""Figures a person would rather look at than read (PNG, matplotlib's Agg backend)."""
from __future__ import annotations

from io import BytesIO
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tgroup import io  # noqa: E402


def gains_heatmap(tasks: Sequence[str], gains: np.ndarray, groups: Sequence[Sequence[str]],
                  path: str | None = None, title: str = ""):
  """Heatmap of ``gains[i, j]`` (row: source i, column: target j), groups outlined.

  Tasks are reordered so each group is a contiguous block on the diagonal.
  Returns the Figure; with ``path`` it is also written as a PNG (and closed).

  Examples:
    >>> fig = gains_heatmap(["a", "b"], [[1.0, 0.5], [0.2, 1.0]], [["a", "b"]])
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['a', 'b']
  """
  order = [t for g in groups for t in g]
  order += [t for t in tasks if t not in order]
  idx = [list(tasks).index(t) for t in order]
  mat = np.asarray(gains)[np.ix_(idx, idx)]
  size = max(4.0, 0.45 * len(tasks) + 2)
  fig, ax = plt.subplots(figsize=(size + 1, size))
  lim = np.abs(mat).max() or 1.0
  im = ax.imshow(mat, cmap="RdBu", vmin=-lim, vmax=lim)
  fig.colorbar(im, ax=ax, shrink=0.8, label="gain (source row → target column)")
  ax.set_xticks(range(len(order)), order, rotation=90)
  ax.set_yticks(range(len(order)), order)
  ax.set_xlabel("target task")
  ax.set_ylabel("source task")
  start = 0
  for g in groups:
    ax.add_patch(patches.Rectangle((start - 0.5, start - 0.5), len(g), len(g), fill=False,
                                   edgecolor="black", linewidth=2.5))
    start += len(g)
  ax.set_title(title)
  return _finish(fig, path)


def per_task_bars(report: Mapping, path: str | None = None, key: str = "test_loss"):
  """Grouped bars: one group of bars per task, one bar per method.

  ``report`` is a report.json dict (``benchmark``, ``tasks``, ``methods`` with
  ``per_task``). Returns the Figure; with ``path`` it is also written as a PNG.
  """
  methods = report["methods"]
  tasks = report["tasks"]
  names = list(methods)
  width = 0.8 / max(len(names), 1)
  fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(tasks) * max(1, len(names) / 3)), 4))
  x = np.arange(len(tasks))
  for k, name in enumerate(names):
    vals = [methods[name]["per_task"][t][key] for t in tasks]
    ax.bar(x + (k - (len(names) - 1) / 2) * width, vals, width, label=name)
  ax.set_xticks(x, tasks, rotation=90 if len(tasks) > 8 else 0)
  ax.set_ylabel(key.replace("_", " "))
  ax.set_title(f"{report['benchmark']}: per-task {key.replace('_', ' ')} by method")
  ax.legend(fontsize="small")
  return _finish(fig, path)


def _finish(fig, path: str | None):
  """Writes and closes ``fig`` when a path is given (the pipeline's files); returns it."""
  if path is not None:
    _save(fig, path, close=True)
  return fig


def gains_over_time(history, path: str | None = None, title: str = "", close: bool = False):
  """How early the ranking of a measure's gains settles (lazy collection relies on it).

  Left: the Spearman rank correlation of each snapshot's off-diagonal gains with
  the final gains, against the training step, with the step from which it stays
  above :data:`~tgroup.gains.history.STABLE_CORRELATION` marked. Right: the
  fraction of target tasks whose best source task is already the final one.

  Args:
    history: a :class:`tgroup.gains.history.GainsHistory`.
    path: also write the figure there as PNG (atomically).
    title: the figure's title (default: the measure's name).
    close: close the figure once written (a script that only wants the file).

  Returns:
    The matplotlib Figure (closed with ``close``).

  Examples:
    >>> from tgroup.gains.history import GainsHistory
    >>> final = np.array([[0, 3, 1], [2, 0, 4], [5, 6, 0]], float)
    >>> h = GainsHistory(("a", "b", "c"), "tag", np.array([10, 20, 30]),
    ...                  np.stack([-final, 2 * final, final]), np.ones((3, 3, 3)))
    >>> fig = gains_over_time(h)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['Spearman ρ with the final gains', 'best source already final']
    >>> plt.close(fig)
  """
  from tgroup.gains import history as history_lib  # pylint: disable=g-import-not-at-top
  steps = np.asarray(history.steps)
  rho, agree = history.rank_correlation(), history.best_source_agreement()
  stable = history.stable_step()
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
  left.plot(steps, rho, marker="o", markersize=3)
  left.axhline(history_lib.STABLE_CORRELATION, color="gray", linestyle=":", linewidth=1)
  if stable is not None:
    left.axvline(stable, color="black", linestyle="--", linewidth=1,
                 label=f"ρ ≥ {history_lib.STABLE_CORRELATION:g} from step {stable}")
    left.legend(fontsize="small", loc="lower right")
  left.set_ylim(min(-0.05, np.nanmin(rho, initial=0.0) - 0.05), 1.05)
  left.set_xlabel("training step")
  left.set_ylabel("Spearman ρ with the final gains")
  right.plot(steps, agree, marker="o", markersize=3, color="tab:green")
  right.set_ylim(-0.05, 1.05)
  right.set_xlabel("training step")
  right.set_ylabel("best source already final")
  fig.suptitle(title or f"{history.measure} gains over training steps")
  if path is not None:
    _save(fig, path, close=close)
  elif close:
    plt.close(fig)
  return fig


def frontier(data: Mapping, path: str | None = None, close: bool = False):
  """The quality–budget frontier of ``frontier.json``: predicted score and real test total.

  Left axis: the grouping objective each budget's solution predicts (higher is
  better); right axis: the real total test loss of its groups where they were
  trained (lower is better). STL and MTL-all are marked at their own cost.
  Returns the Figure; writes a PNG when ``path`` is given.
  """
  points = data["points"]
  budgets = [p["budget"] for p in points]
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(budgets, [p["predicted"] for p in points], "o-", color="tab:blue",
          label="predicted (objective)")
  ax.set_xlabel(f"budget ({data['cost_model']})")
  ax.set_ylabel("predicted objective (higher is better)", color="tab:blue")
  real = [(p["budget"], p["test_total"]) for p in points if p.get("test_total") is not None]
  twin = ax.twinx()
  if real:
    twin.plot(*zip(*real), "s--", color="tab:red", label="test total (trained)")
  for name, marker in (("stl", "^"), ("mtl_all", "v")):
    entry = data.get(name) or {}
    if entry.get("test_total") is not None:
      twin.plot([entry["cost"]], [entry["test_total"]], marker, color="black", markersize=9,
                linestyle="none", label=f"{name} (at its cost)")
  twin.set_ylabel("total test loss (lower is better)", color="tab:red")
  lines = ax.get_legend_handles_labels()
  more = twin.get_legend_handles_labels()
  ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small", loc="upper center",
            bbox_to_anchor=(0.5, -0.17), ncol=2)
  ax.set_title(f"{data.get('method', '')} grouping against the budget")
  if path is not None:
    _save(fig, path, close=close)
  elif close:
    plt.close(fig)
  return fig


def _save(fig, path: str, close: bool = True) -> None:
  buf = BytesIO()
  fig.tight_layout()
  fig.savefig(buf, format="png", dpi=110)
  if close:
    plt.close(fig)
  io.atomic_write_bytes(path, buf.getvalue())
