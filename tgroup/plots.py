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
                  path: str, title: str = "") -> None:
  """Heatmap of ``gains[i, j]`` (row: source i, column: target j), groups outlined.

  Tasks are reordered so each group is a contiguous block on the diagonal.
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
  _save(fig, path)


def per_task_bars(report: Mapping, path: str, key: str = "test_loss") -> None:
  """Grouped bars: one group of bars per task, one bar per method."""
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
  _save(fig, path)


def _save(fig, path: str) -> None:
  buf = BytesIO()
  fig.tight_layout()
  fig.savefig(buf, format="png", dpi=110)
  plt.close(fig)
  io.atomic_write_bytes(path, buf.getvalue())
