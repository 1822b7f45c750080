r"""Network selection on tables of trained networks' losses (Standley et al. 2020).

Standley et al. (ICML 2020) trained a network for every subset of 5 Taskonomy
tasks and released each network's per-task losses as a tab-separated table:
row 1 holds m half-size single-task networks (cost 0.5 each), every later row
one full-size network (cost 1) whose non-empty cells are the losses of the
tasks it serves. Network selection chooses networks whose costs sum to at most
a budget so that every task is served, minimising the sum over tasks of the
lowest loss any chosen network gives it. That is a cover in
:func:`tgroup.grouping.select_candidates` with per-task scores = -loss.

Standley's higher-order approximation (HOA) predicts a network's losses from
the pair networks alone, which is what a user would select with before paying
to train the larger networks: :func:`hoa_table`.

Examples:
  >>> table = parse_table("0.5\t0.5\t0.5\n"
  ...                     "0.4\t0.4\t0.6\n"
  ...                     "0.3\t0.35\t\n"
  ...                     "\t0.45\t0.4\n"
  ...                     "0.45\t\t0.5\n", source="demo.tsv")
  >>> result = select_networks(table, budget=1.5)
  >>> [(n["tasks"], n["cost"]) for n in result["networks"]]
  [([2], 0.5), ([0, 1], 1.0)]
  >>> round(result["total_loss"], 6)
  1.15
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from collections.abc import Sequence

import mip
import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.select import select_candidates

HALF_COST = 0.5
FULL_COST = 1.0
APPROXIMATIONS = ("none", "hoa")


def _fmt(tasks) -> str:
  return "{" + ", ".join(str(t) for t in sorted(tasks)) + "}"


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


def _parse_loss(source: str, lineno: int, column: int, cell: str) -> float:
  text = cell.strip()
  where = f"{source}:{lineno}: column {column + 1} (task {column})"
  shown = repr(text if len(text) <= 30 else text[:27] + "...")
  try:
    # float() also reads "1_000"; a loss table never means that.
    if "_" in text:
      raise ValueError(text)
    value = float(text)
  except ValueError:
    raise UserError(f"{where}: {shown} is not a number") from None
  if not math.isfinite(value):
    raise UserError(f"{where}: loss {shown} is not finite")
  if value < 0:
    raise UserError(f"{where}: loss {shown} is negative")
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
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise UserError(f"{path}: no such file") from None
  except OSError as e:
    raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    lineno = data[:e.start].count(b"\n") + 1
    raise UserError(f"{path}:{lineno}: not UTF-8 text") from None
  return parse_table(text, source=str(path))


def hoa_table(table: NetworkTable) -> NetworkTable:
  r"""Standley's higher-order approximation: larger networks predicted from pairs.

  Every network serving 3 or more tasks gets, for each of its tasks t, the mean
  over its other tasks u of t's loss on the pair network {t, u} (the network
  serving exactly t and u). Networks serving 1 or 2 tasks keep their measured
  losses. Only pairs are trained, so the prediction is what a user can select
  with before training anything larger.

  Args:
    table: measured losses; it must hold one pair network for every pair of
      tasks that some network of 3+ tasks serves.

  Returns:
    A table with the same networks and costs and the predicted losses.

  Raises:
    UserError: a needed pair network is missing, or appears twice.

  Examples:
    >>> table = parse_table("0.5\t0.5\t0.5\n0.3\t0.35\t\n\t0.45\t0.4\n"
    ...                     "0.45\t\t0.5\n0.4\t0.4\t0.6", source="demo.tsv")
    >>> hoa_table(table).losses[-1].round(6).tolist()
    [0.375, 0.4, 0.45]
    >>> np.array_equal(hoa_table(table).losses[:6], table.losses[:6], equal_nan=True)
    True
  """
  pairs: dict[frozenset[int], list[int]] = {}
  for n, tasks in enumerate(table.networks):
    if len(tasks) == 2:
      pairs.setdefault(tasks, []).append(n)
  losses = np.array(table.losses)
  for n, tasks in enumerate(table.networks):
    if len(tasks) < 3:
      continue
    for t in tasks:
      others = sorted(tasks - {t})
      losses[n, t] = math.fsum(
          table.losses[_pair_network(table, pairs, tasks, t, u), t] for u in others
      ) / len(others)
  return dataclasses.replace(table, losses=losses, source=f"{table.source} (HOA)")


def _pair_network(table, pairs, tasks, t, u) -> int:
  found = pairs.get(frozenset({t, u}), [])
  if len(found) != 1:
    problem = ("which the table lacks" if not found else
               f"which the table holds {len(found)} times (networks "
               f"{', '.join(map(str, found))}), so the approximation is ambiguous")
    raise UserError(f"{table.source}: the higher-order approximation of network "
                    f"{_fmt(tasks)} needs the pair network of tasks {_fmt({t, u})}, "
                    f"{problem}")
  return found[0]


def cheapest_cost(table: NetworkTable) -> float:
  r"""The lowest total cost of networks that together serve every task.

  Returns ``math.inf`` when some task is served by no network.

  Examples:
    >>> table = parse_table("0.5\t0.6\n0.3\t0.7", source="demo.tsv")
    >>> cheapest_cost(table)
    1.0
  """
  serves = np.isfinite(table.losses)
  if not serves.any(axis=0).all():
    return math.inf
  # A weighted set cover; CBC solves these sizes (tens to thousands of
  # networks) exactly in milliseconds.
  model = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
  model.verbose = 0
  # 0 = CBC's serial default. threads=1 runs CBC's threaded search with one
  # worker, which was measured to sit idle ~10 s in some solves (a 73-test
  # property file: 96 s wall for 16 s of CPU; with 0: 15.5 s).
  model.threads = 0
  model.max_mip_gap = model.max_mip_gap_abs = 0.0
  x = [model.add_var(var_type=mip.BINARY) for _ in table.networks]
  for t in range(table.num_tasks):
    model += mip.xsum(x[n] for n in np.flatnonzero(serves[:, t])) >= 1
  model.objective = mip.xsum(float(c) * x[n] for n, c in enumerate(table.costs))
  status = model.optimize()
  if status != mip.OptimizationStatus.OPTIMAL:
    raise RuntimeError(f"CBC returned {status} on a set cover that has a solution")
  return math.fsum(float(table.costs[n]) for n in range(len(x)) if x[n].x >= 0.5)


def _check_budget(budget) -> float:
  ok = isinstance(budget, numbers.Real) and not isinstance(budget, bool)
  if not ok or not math.isfinite(float(budget)) or float(budget) <= 0:
    raise UserError(f"budget must be a positive number, got {budget!r}")
  return float(budget)


def _check_same_layout(table: NetworkTable, test: NetworkTable) -> None:
  where = f"{test.source} does not match {table.source}:"
  if test.num_tasks != table.num_tasks:
    raise UserError(f"{where} {test.num_tasks} tasks, not {table.num_tasks}")
  if len(test.networks) != len(table.networks):
    raise UserError(f"{where} {len(test.networks)} networks, not {len(table.networks)}")
  for n, (a, b) in enumerate(zip(table.networks, test.networks)):
    if a != b or table.costs[n] != test.costs[n]:
      raise UserError(f"{where} network {n} serves tasks {_fmt(b)} at cost "
                      f"{test.costs[n]:g}, not {_fmt(a)} at cost {table.costs[n]:g}")


def _served_total(table: NetworkTable, served_by: Sequence[int]) -> float:
  return math.fsum(float(table.losses[n, t]) for t, n in enumerate(served_by))


def _best_total(table: NetworkTable, chosen: Sequence[int]) -> float:
  return math.fsum(float(np.nanmin(table.losses[list(chosen), t]))
                   for t in range(table.num_tasks))


def select_networks(table: NetworkTable, budget: float, approximation: str = "none",
                    test_table: NetworkTable | None = None,
                    time_limit_s: float | None = None) -> dict:
  r"""Standley's network selection: the best networks to train within a budget.

  Chooses networks whose costs sum to at most `budget` so that every task is
  served, minimising the sum over tasks of the lowest loss a chosen network
  gives it. The losses selected on are `table`'s, or with
  ``approximation="hoa"`` those :func:`hoa_table` predicts from its pairs.

  Args:
    table: measured (e.g. validation) losses.
    budget: the most the chosen networks may cost together (> 0).
    approximation: "none" selects on `table`; "hoa" on `hoa_table(table)`.
    test_table: the same networks' losses on held-out data (same networks,
      same order, same costs), or None.
    time_limit_s: CBC's wall-clock limit; "status" says whether the choice
      was proven optimal.

  Returns:
    A JSON-ready dict:
      "budget": `budget`;
      "networks": the chosen networks as ``{"tasks": [ascending task
        indices], "cost": c}``, ordered by cost, then tasks;
      "total_loss": the sum over tasks of the lowest loss any chosen network
        gives the task on `table` (the real losses, also under "hoa");
      "test_total_loss": the sum over tasks of the `test_table` loss of the
        network that serves the task in the selection (chosen on the
        selection table, never on the test losses), or None;
      "approximation": `approximation`;
      "predicted_total_loss": the minimised objective, i.e. the summed losses
        on the table selected on (the HOA predictions under "hoa");
      "assignment": a list; entry t is the index into "networks" of the
        network serving task t in the selection;
      "status": "optimal", or "feasible" when the time limit stopped CBC;
      "table", "test_table": the tables' sources (paths), or None.

  Raises:
    InfeasibleError: no networks within `budget` serve every task; the message
      names the budget and the cheapest cost that does.
    UserError: a bad budget or approximation, a test table whose networks
      differ, or (under "hoa") a missing pair network.

  Examples:
    >>> table = parse_table("0.5\t0.5\t0.5\n0.4\t0.4\t0.6\n0.3\t0.35\t\n"
    ...                     "\t0.45\t0.4\n0.45\t\t0.5\n", source="demo.tsv")
    >>> result = select_networks(table, budget=1)
    >>> result["networks"], round(result["total_loss"], 6)
    ([{'tasks': [0, 1, 2], 'cost': 1.0}], 1.4)
    >>> hoa = select_networks(table, budget=1, approximation="hoa")
    >>> round(hoa["predicted_total_loss"], 6), round(hoa["total_loss"], 6)
    (1.225, 1.4)
    >>> select_networks(table, budget=0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.InfeasibleError: demo.tsv: budget 0.5 ...; the cheapest that do cost 1
  """
  budget = _check_budget(budget)
  if approximation not in APPROXIMATIONS:
    raise UserError(f"approximation must be one of {', '.join(APPROXIMATIONS)}, got "
                    f"{approximation!r}")
  if test_table is not None:
    _check_same_layout(table, test_table)
  selecting = hoa_table(table) if approximation == "hoa" else table
  try:
    selection = select_candidates(list(selecting.networks), -selecting.losses, overlap=True,
                                  costs=selecting.costs, budget=budget,
                                  time_limit_s=time_limit_s)
  except InfeasibleError:
    raise InfeasibleError(_infeasible_message(table, budget)) from None
  order = sorted(selection.chosen,
                 key=lambda n: (float(table.costs[n]), sorted(table.networks[n]), n))
  position = {n: i for i, n in enumerate(order)}
  served_by = [selection.assignment[t] for t in range(table.num_tasks)]
  return {
      "budget": budget,
      "networks": [{"tasks": sorted(table.networks[n]), "cost": float(table.costs[n])}
                   for n in order],
      "total_loss": _best_total(table, order),
      "test_total_loss": None if test_table is None else _served_total(test_table, served_by),
      "approximation": approximation,
      "predicted_total_loss": _served_total(selecting, served_by),
      "assignment": [position[n] for n in served_by],
      "status": selection.status,
      "table": table.source,
      "test_table": None if test_table is None else test_table.source,
  }


def _infeasible_message(table: NetworkTable, budget: float) -> str:
  cheapest = cheapest_cost(table)
  if math.isinf(cheapest):
    unserved = int(np.flatnonzero(~np.isfinite(table.losses).any(axis=0))[0])
    return f"{table.source}: no network serves task {unserved}, whatever the budget"
  return (f"{table.source}: budget {budget:g} cannot buy networks serving all "
          f"{table.num_tasks} tasks; the cheapest that do cost {cheapest:g}")
