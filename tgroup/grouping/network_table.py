r"""Standley's tables of trained networks' losses: the format and its parser.

Standley et al. (ICML 2020) trained a network for every subset of 5 Taskonomy
tasks and released each network's per-task losses as a tab-separated table:
row 1 holds m half-size single-task networks (cost 0.5 each), every later row
one full-size network (cost 1) whose non-empty cells are the losses of the
tasks it serves. :func:`read_table` and :func:`parse_table` read one into a
:class:`NetworkTable`, which any source of measured networks may also build
directly; :mod:`tgroup.grouping.network_selection` chooses among them.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator

import numpy as np

from tgroup import io
from tgroup.errors import UserError

HALF_COST = 0.5
FULL_COST = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class NetworkTable:
  """Trained networks, what each costs, and the loss each gives its tasks.

  Attributes:
    networks: the task indices each network serves, one frozenset per network.
    costs: float (n_networks,); what training each network costs.
    losses: float (n_networks, num_tasks); ``[n, t]`` is task t's loss on
      network n, NaN when n does not serve t. Lower is better.
    num_tasks: m, the number of tasks (columns).
    source: where the table came from (a path), for messages.
  """
  networks: tuple[frozenset[int], ...]
  costs: np.ndarray
  losses: np.ndarray
  num_tasks: int
  source: str = "<table>"

  def __post_init__(self):
    m = self.num_tasks
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
      raise UserError(f"{self.source}: num_tasks must be a positive integer, got {m!r}")
    networks = _checked_networks(self.source, self.networks, int(m))
    costs = np.array(self.costs, dtype=np.float64)
    if costs.shape != (len(networks),) or not (np.isfinite(costs) & (costs >= 0)).all():
      raise UserError(f"{self.source}: costs must be {len(networks)} finite numbers >= 0, "
                      "one per network")
    losses = _checked_losses(self.source, networks, self.losses, int(m))
    # Read-only copies: a table is a record of measurements, shared freely.
    costs.setflags(write=False)
    losses.setflags(write=False)
    object.__setattr__(self, "networks", networks)
    object.__setattr__(self, "costs", costs)
    object.__setattr__(self, "losses", losses)
    object.__setattr__(self, "num_tasks", int(m))


def _checked_networks(source: str, networks, m: int) -> tuple[frozenset[int], ...]:
  checked = []
  for i, tasks in enumerate(networks):
    try:
      tasks = frozenset(operator.index(t) for t in tasks)
    except TypeError:
      tasks = frozenset()
    if not tasks or not all(0 <= t < m for t in tasks):
      raise UserError(f"{source}: network {i} must serve a non-empty set of task indices "
                      f"in [0, {m})")
    checked.append(tasks)
  return tuple(checked)


def _checked_losses(source: str, networks, losses, m: int) -> np.ndarray:
  losses = np.array(losses, dtype=np.float64)
  if losses.shape != (len(networks), m):
    raise UserError(f"{source}: losses must have shape ({len(networks)}, {m}), got "
                    f"{losses.shape}")
  serves = np.zeros(losses.shape, dtype=bool)
  for i, tasks in enumerate(networks):
    serves[i, sorted(tasks)] = True
  bad = np.argwhere(serves != np.isfinite(losses))
  if len(bad):
    i, t = bad[0]
    raise UserError(f"{source}: network {i} {'serves' if serves[i, t] else 'omits'} "
                    f"task {t} but its loss there is {losses[i, t]}; losses are finite "
                    "exactly where a network serves a task, NaN elsewhere")
  return losses


def shown(text: str) -> str:
  """A cell as an error message shows it: quoted, long ones cut."""
  return repr(text if len(text) <= 30 else text[:27] + "...")


def parse_cell(source: str, lineno: int, column: int, cell: str, what: str) -> float:
  """A table cell as a finite float, or a UserError naming file, line and column."""
  text = cell.strip()
  where = f"{source}:{lineno}: column {column + 1} (task {column})"
  try:
    # float() also reads "1_000"; a results table never means that.
    if "_" in text:
      raise ValueError(text)
    value = float(text)
  except ValueError:
    raise UserError(f"{where}: {shown(text)} is not a number") from None
  if not math.isfinite(value):
    raise UserError(f"{where}: {what}{shown(text)} is not finite")
  return value


def _parse_loss(source: str, lineno: int, column: int, cell: str) -> float:
  value = parse_cell(source, lineno, column, cell, "loss ")
  if value < 0:
    raise UserError(f"{source}:{lineno}: column {column + 1} (task {column}): loss "
                    f"{shown(cell.strip())} is negative")
  return value


def _table_lines(text: str) -> list[str]:
  lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
  # A final newline, or an editor's blank lines after the last row, end the table.
  while lines and not lines[-1].strip():
    lines.pop()
  return lines


def parse_table(text: str, source: str = "<string>") -> NetworkTable:
  r"""Parses the text of one of Standley's network tables (see :func:`read_table`).

  Args:
    text: the file's contents.
    source: the file's name, for messages.

  Returns:
    A :class:`NetworkTable`: the m half-size networks of row 1, then one
    full-size network per later row, in file order.

  Raises:
    UserError: malformed text; the one-line message names source and line.

  Examples:
    >>> table = parse_table("0.5\t0.6\n0.4\t\n\t0.5\n0.3\t0.7", source="t.tsv")
    >>> table.networks
    (frozenset({0}), frozenset({1}), frozenset({0}), frozenset({1}), frozenset({0, 1}))
    >>> table.costs.tolist()
    [0.5, 0.5, 1.0, 1.0, 1.0]
    >>> table.losses[4].tolist()
    [0.3, 0.7]
    >>> parse_table("0.5\t0.6\n0.4\tx\n", source="t.tsv")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: t.tsv:2: column 2 (task 1): 'x' is not a number
  """
  lines = _table_lines(text)
  if not lines:
    raise UserError(f"{source}: empty; expected row 1 with one half-size network's loss "
                    "per task, then one row per full-size network")
  if not lines[0].strip():
    raise UserError(f"{source}:1: row 1 is blank; it holds each task's loss from its own "
                    "half-size network")
  first = lines[0].split("\t")
  m = len(first)
  for k, cell in enumerate(first):
    if not cell.strip():
      raise UserError(f"{source}:1: column {k + 1} (task {k}) is empty; row 1 holds every "
                      "task's loss from its own half-size network")
  networks = [frozenset({k}) for k in range(m)]
  costs = [HALF_COST] * m
  losses = np.full((m, m), np.nan)
  for k, cell in enumerate(first):
    losses[k, k] = _parse_loss(source, 1, k, cell)
  rows = [losses]
  for lineno, line in enumerate(lines[1:], start=2):
    row = _full_size_row(source, lineno, line, m)
    networks.append(frozenset(np.flatnonzero(np.isfinite(row)).tolist()))
    costs.append(FULL_COST)
    rows.append(row[None])
  return NetworkTable(tuple(networks), np.array(costs), np.concatenate(rows), m, source)


def _full_size_row(source: str, lineno: int, line: str, m: int) -> np.ndarray:
  if not line.strip():
    raise UserError(f"{source}:{lineno}: row has no values; every row after the first is "
                    "a network serving at least one task")
  cells = line.split("\t")
  if len(cells) != m:
    raise UserError(f"{source}:{lineno}: {len(cells)} tab-separated columns, expected {m} "
                    "(as in row 1)")
  return np.array([_parse_loss(source, lineno, k, cell) if cell.strip() else np.nan
                   for k, cell in enumerate(cells)])


def read_table(path: str) -> NetworkTable:
  r"""Reads one of Standley's network tables.

  The format: tab-separated, no header, m columns (one per task, any m >= 1).
  Row 1 holds m half-size single-task networks, each costing 0.5 and serving
  only its own column. Every later row is one full-size network costing 1 that
  serves the tasks whose cells are non-empty. The last line may lack a newline;
  blank lines after the last row are ignored.

  Args:
    path: the table's file.

  Returns:
    A :class:`NetworkTable` whose ``source`` is `path`.

  Raises:
    UserError: a missing or unreadable file, or malformed contents (a wrong
      column count, a cell that is not a number, a negative or non-finite
      loss, an empty cell in row 1, a later row with no values); the one-line
      message names the file and line.

  Examples:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.tsv")
    >>> with open(path, "w") as f:
    ...   _ = f.write("0.5\t0.6\n0.3\t0.7\n")
    >>> read_table(path).networks
    (frozenset({0}), frozenset({1}), frozenset({0, 1}))
    >>> read_table(path + ".missing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: ...pairs.tsv.missing: no such file
  """
  return parse_table(io.read_text(path), source=str(path))
