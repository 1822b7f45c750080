r"""Combination tables: trained groups' per-task scores in two text files, and selection on them.

A combination table records one trained network per row, in two whitespace-separated
text files with one row per network, in the same order and with one column per task:

- the *combinations* file holds each row's membership mask, ``1`` for a task the
  network was trained on and ``0`` for the others;
- the *scores* file holds, on the same row, each member task's score on that network
  and ``0`` for every non-member.

A score is a ``gain`` (higher is better, relative to training the task alone, so a
task's gain on its own single-task network is 0 by definition) or a ``loss`` (lower is
better). Row r is line r + 1 of both files: there is no header, every line is a row
(blank lines may only end a file), no mask may be all zeros and no mask may repeat.

The singleton rule: under ``gain`` a singleton row is implied where the table lacks
it, with gain 0, and a singleton row that is present must score 0; training a task
alone is always possible and is what a gain is measured against. Under ``loss`` a
single-task network's loss is a measurement like any other, so only the singleton
rows present can be chosen.

:func:`select_combinations` chooses rows as :func:`~tgroup.grouping.solve_measured`
does: a partition (every task in exactly one chosen row) or a cover (every task
served by its best chosen row), with exactly or at most k rows; with every subset of
the tasks present that is exhaustive search over groupings.

Examples:
  >>> combinations = "1 0 0\n0 1 0\n0 0 1\n1 1 0\n0 1 1\n1 1 1\n"
  >>> scores = "0 0 0\n0 0 0\n0 0 0\n0.2 0.1 0\n0 0.3 -0.1\n0.1 -0.2 0.05\n"
  >>> table = parse_combination_table(combinations, scores, "gain", "c.txt", "s.txt")
  >>> table.masks.sum(axis=1).tolist()
  [1, 1, 1, 2, 2, 3]
  >>> result = select_combinations(table)
  >>> [(g["tasks"], g["row"]) for g in result["groups"]], round(result["total"], 6)
  ([([0, 1], 3), ([2], 2)], 0.3)
  >>> result = select_combinations(table, overlap=True, max_groups=2)
  >>> [(g["tasks"], g["serves"]) for g in result["groups"]], round(result["total"], 6)
  ([([0, 1, 2], [0, 2]), ([1, 2], [1])], 0.45)
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from tgroup.errors import InfeasibleError, UserError
from tgroup.grouping.constraints import Constraints
from tgroup.grouping.measured import solve_measured
from tgroup.grouping.network_table import parse_cell, shown
from tgroup.io import read_text

SCORE_KINDS = ("gain", "loss")


def _fmt(tasks) -> str:
  return "{" + ", ".join(str(t) for t in sorted(tasks)) + "}"


@dataclasses.dataclass(frozen=True, eq=False)
class CombinationTable:
  """Trained groups (rows) and each member task's score on its row's network.

  Attributes:
    masks: bool (n_rows, m); ``[r, t]`` says whether row r's network was trained on
      task t.
    scores: float (n_rows, m); task t's score on row r's network, 0 where t is not a
      member.
    score_kind: "gain" (higher is better; a singleton scores 0) or "loss" (lower is
      better).
    source: where the masks came from (the combinations file), for messages.
    scores_source: where the scores came from (the scores file), for messages.
  """
  masks: np.ndarray
  scores: np.ndarray
  score_kind: str
  source: str = "<combinations>"
  scores_source: str = "<scores>"

  def __post_init__(self):
    if self.score_kind not in SCORE_KINDS:
      raise UserError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got "
                      f"{self.score_kind!r}")
    masks = np.array(self.masks)
    if masks.ndim != 2 or not masks.size or not np.isin(masks, (0, 1)).all():
      raise UserError(f"{self.source}: masks must be a non-empty 2-D array of 0/1")
    masks = masks.astype(bool)
    _check_rows(self.source, masks)
    scores = _checked_scores(self.scores_source, masks, self.scores, self.score_kind)
    # Read-only copies: a table is a record of measurements, shared freely.
    masks.setflags(write=False)
    scores.setflags(write=False)
    object.__setattr__(self, "masks", masks)
    object.__setattr__(self, "scores", scores)

  @property
  def num_tasks(self) -> int:
    return self.masks.shape[1]


def _check_rows(source: str, masks: np.ndarray) -> None:
  empty = np.flatnonzero(~masks.any(axis=1))
  if len(empty):
    raise UserError(f"{source}:{empty[0] + 1}: the mask has no 1; every row is a network "
                    "trained on at least one task")
  first_row: dict[bytes, int] = {}
  for r, key in enumerate(np.packbits(masks, axis=1)):
    earlier = first_row.setdefault(key.tobytes(), r)
    if earlier != r:
      raise UserError(f"{source}:{r + 1}: repeats the group "
                      f"{_fmt(np.flatnonzero(masks[r]))} of line {earlier + 1}; each group "
                      "has one row")


def _checked_scores(source: str, masks: np.ndarray, scores, score_kind: str) -> np.ndarray:
  scores = np.array(scores, dtype=np.float64)
  if scores.shape != masks.shape:
    raise UserError(f"{source}: scores must have the masks' shape {masks.shape}, got "
                    f"{scores.shape}")
  bad = np.argwhere(~np.isfinite(scores))
  if len(bad):
    r, t = bad[0]
    raise UserError(f"{source}:{r + 1}: task {t}'s score {scores[r, t]} is not finite")
  bad = np.argwhere(~masks & (scores != 0))
  if len(bad):
    r, t = bad[0]
    raise UserError(f"{source}:{r + 1}: task {t} scores {scores[r, t]:g} but is not in "
                    f"the row's group {_fmt(np.flatnonzero(masks[r]))}; a non-member "
                    "scores 0")
  if score_kind == "gain":
    singletons = masks.sum(axis=1) == 1
    bad = np.flatnonzero(singletons & (scores != 0).any(axis=1))
    if len(bad):
      r = bad[0]
      t = int(np.flatnonzero(masks[r])[0])
      raise UserError(f"{source}:{r + 1}: the singleton {{{t}}} has gain "
                      f"{scores[r, t]:g}; a gain is relative to training the task alone, "
                      "so a singleton's is 0 (a loss table needs --score_kind=loss)")
  return scores


def _lines(text: str, source: str, what: str) -> list[str]:
  lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
  # A final newline, or an editor's blank lines after the last row, end the table.
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise UserError(f"{source}: empty; expected one row of {what} per trained group")
  for lineno, line in enumerate(lines, start=1):
    if not line.strip():
      raise UserError(f"{source}:{lineno}: blank line inside the table; row r is line "
                      "r + 1 of both files, so only the end may be blank")
  return lines


def _cells(source: str, lineno: int, line: str, m: int | None) -> list[str]:
  cells = line.split()
  if m is not None and len(cells) != m:
    raise UserError(f"{source}:{lineno}: {len(cells)} columns, expected {m} (one per task)")
  return cells


def parse_combinations(text: str, source: str = "<combinations>") -> np.ndarray:
  """The membership masks of a combinations file's text.

  Args:
    text: the file's contents: one row of whitespace-separated 0/1 per group.
    source: the file's name, for messages.

  Returns:
    bool (n_rows, m).

  Raises:
    UserError: rows of unequal length, or a cell other than 0 or 1; the one-line
      message names source and line.

  Examples:
    >>> parse_combinations("1 0\\n1 1\\n").astype(int).tolist()
    [[1, 0], [1, 1]]
    >>> parse_combinations("1 0\\n1 2\\n", "c.txt")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: c.txt:2: column 2 (task 1) is '2', not 0 or 1
  """
  rows, m = [], None
  for lineno, line in enumerate(_lines(text, source, "0/1 task memberships"), start=1):
    cells = _cells(source, lineno, line, m)
    m = len(cells)
    for t, cell in enumerate(cells):
      if cell not in ("0", "1"):
        raise UserError(f"{source}:{lineno}: column {t + 1} (task {t}) is {shown(cell)}, "
                        "not 0 or 1")
    rows.append([cell == "1" for cell in cells])
  return np.array(rows, dtype=bool)


def parse_scores(text: str, num_rows: int, num_tasks: int, source: str = "<scores>",
                 combinations: str = "<combinations>") -> np.ndarray:
  """The scores of a scores file's text, shaped as its combinations file.

  Args:
    text: the file's contents: one row of whitespace-separated numbers per group.
    num_rows: the rows of the combinations file; the scores file must have as many.
    num_tasks: its columns (tasks); every row here must have as many.
    source: the scores file's name, for messages.
    combinations: the combinations file's name, for messages.

  Returns:
    float (num_rows, num_tasks). Which cells may be nonzero is checked by
    :class:`CombinationTable`.

  Raises:
    UserError: a cell that is not a number, a non-finite one, or a shape unlike the
      combinations file's; the one-line message names source and line.

  Examples:
    >>> parse_scores("0.5 0\\n0.2 0.1\\n", 2, 2).tolist()
    [[0.5, 0.0], [0.2, 0.1]]
    >>> parse_scores("0.5 0\\n", 2, 2, "s.txt", "c.txt")
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: s.txt has 1 rows but c.txt has 2; row r holds the scores of \
the group on row r
  """
  lines = _lines(text, source, "scores")
  if len(lines) != num_rows:
    raise UserError(f"{source} has {len(lines)} rows but {combinations} has {num_rows}; "
                    "row r holds the scores of the group on row r")
  scores = np.zeros((num_rows, num_tasks))
  for lineno, line in enumerate(lines, start=1):
    for t, cell in enumerate(_cells(source, lineno, line, num_tasks)):
      scores[lineno - 1, t] = parse_cell(source, lineno, t, cell, "")
  return scores


def parse_combination_table(combinations: str, scores: str, score_kind: str,
                            combinations_source: str = "<combinations>",
                            scores_source: str = "<scores>") -> CombinationTable:
  """A :class:`CombinationTable` from the two files' texts (see the module docstring)."""
  if score_kind not in SCORE_KINDS:
    raise UserError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got "
                    f"{score_kind!r}")
  masks = parse_combinations(combinations, combinations_source)
  values = parse_scores(scores, masks.shape[0], masks.shape[1], scores_source,
                        combinations_source)
  return CombinationTable(masks, values, score_kind, combinations_source, scores_source)


def read_combination_table(combinations: str, scores: str,
                           score_kind: str) -> CombinationTable:
  r"""Reads a combination table from its two files.

  Args:
    combinations: the file of 0/1 membership masks, one row per trained group.
    scores: the file of the member tasks' scores, row for row (0 for non-members).
    score_kind: "gain" (higher is better; a singleton scores 0, and absent singleton
      rows are implied) or "loss" (lower is better).

  Returns:
    A :class:`CombinationTable` whose sources are the two paths.

  Raises:
    UserError: a missing or unreadable file, or malformed contents; the one-line
      message names the file and line.

  Examples:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name, text in [("c.txt", "1 0\n0 1\n1 1\n"), ("s.txt", "0 0\n0 0\n0.1 x\n")]:
    ...   with open(os.path.join(folder, name), "w") as f:
    ...     _ = f.write(text)
    >>> read_combination_table(os.path.join(folder, "c.txt"), os.path.join(folder, "s.txt"),
    ...                        "gain")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: ...s.txt:3: column 2 (task 1): 'x' is not a number
  """
  return parse_combination_table(read_text(combinations), read_text(scores), score_kind,
                                 combinations, scores)


def read_test_scores(path: str, table: CombinationTable) -> np.ndarray:
  """Held-out scores of `table`'s rows: a scores file for the same combinations.

  Checked as `table`'s own scores are (same shape, 0 for non-members, a singleton's
  gain 0); returns float (n_rows, m).
  """
  scores = parse_scores(read_text(path), table.masks.shape[0], table.num_tasks, path,
                        table.source)
  return _checked_scores(path, table.masks, scores, table.score_kind)


def _candidates(table: CombinationTable) -> dict[tuple[int, ...], int | None]:
  """Every group that may be chosen -> its row, None for an implied singleton."""
  rows = {tuple(np.flatnonzero(mask).tolist()): r for r, mask in enumerate(table.masks)}
  if table.score_kind == "gain":
    for t in range(table.num_tasks):
      rows.setdefault((t,), None)
  return rows


def _rows(k: int) -> str:
  return f"{k} row{'s' * (k != 1)}"


def _count(num_groups: int | None, max_groups: int | None) -> str:
  if num_groups is not None:
    return f"exactly {_rows(num_groups)}"
  if max_groups is not None:
    return f"at most {_rows(max_groups)}"
  return "any number of rows"


def _counts(ks: list[int]) -> str:
  if len(ks) > 2 and ks == list(range(ks[0], ks[-1] + 1)):
    return f"{ks[0]} to {ks[-1]}"
  return str(ks[0]) if len(ks) == 1 else ", ".join(map(str, ks[:-1])) + f" or {ks[-1]}"


def _infeasible_message(table: CombinationTable, losses, overlap: bool,
                        num_groups: int | None, max_groups: int | None,
                        time_limit_s: float | None) -> str:
  """Why no selection of `table`'s rows meets the request, naming what is missing."""
  m = table.num_tasks
  names = [str(t) for t in range(m)]
  # Which numbers of rows allow a selection at all: m tiny solves, on the error path only.
  possible = []
  for k in range(1, m + 1):
    try:
      solve_measured(names, losses, Constraints(num_groups=k), overlap)
      possible.append(k)
    except InfeasibleError:
      pass
  shape = "cover" if overlap else "partition"
  count = _count(num_groups, max_groups)
  missing = [t for t in range(m) if (t,) not in losses]
  lacks = (f"; the table lacks the singleton rows {', '.join(_fmt([t]) for t in missing)}"
           if missing else "")
  if not possible:  # a cover always exists once every task is in a row (checked before)
    return (f"{table.source}: no rows partition the {m} tasks (each task in exactly one "
            f"chosen row) at any number of rows{lacks}")
  allowed = [k for k in possible if (num_groups is None or k == num_groups)
             and (max_groups is None or k <= max_groups)]
  if allowed:  # a selection exists: the time limit stopped CBC before it found one
    return (f"{table.source}: CBC found no {shape} into {count} within the time limit "
            f"({time_limit_s} s), though one exists")
  message = (f"{table.source}: no {shape} of the {m} tasks into {count}; its rows allow "
             f"{shape}s into {_counts(possible)} rows")
  if num_groups == m and not overlap:
    message += lacks
  return message


def select_combinations(table: CombinationTable, num_groups: int | None = None,
                        max_groups: int | None = None, overlap: bool = False,
                        test_scores: np.ndarray | None = None,
                        time_limit_s: float | None = None, test_source: str | None = None
                        ) -> dict:
  """The best rows of a combination table: a partition or a cover of the tasks.

  A partition chooses rows holding every task exactly once; a cover chooses rows
  holding every task at least once, each task served by its best chosen row, and
  every chosen row serving at least one task. The total, summed over tasks, of the
  score of the row serving each task is maximised under "gain" and minimised under
  "loss", over the rows present plus, under "gain", the implied singletons (see the
  module docstring).

  Args:
    table: the rows and their scores (e.g. on validation data).
    num_groups: exactly this many rows are chosen, or None.
    max_groups: at most this many, or None.
    overlap: False for a partition, True for a cover.
    test_scores: float (n_rows, m), the same rows' held-out scores
      (:func:`read_test_scores`), or None.
    time_limit_s: CBC's wall-clock limit; "status" says whether the choice was proven
      optimal.
    test_source: where `test_scores` came from, for the record.

  Returns:
    A JSON-ready dict:
      "groups": the chosen rows in task order, each ``{"tasks": [ascending task
        indices], "row": its 0-based row (line row + 1 of both files), or None for an
        implied singleton, "serves": [the tasks it serves], "total": the summed score
        of the tasks it serves}``;
      "assignment": entry t is the index into "groups" of the row serving task t;
      "total": the optimised objective, the summed score of each task on the row
        serving it;
      "test_total": the same sum on `test_scores` (the rows chosen on `table`), or
        None;
      "status": "optimal", or "feasible" when the time limit stopped CBC;
      "score_kind", "overlap", "num_groups", "max_groups": the request;
      "combinations", "scores", "test_scores": the files' sources.

  Raises:
    InfeasibleError: no selection meets the request; the message names the tasks no
      row holds, the numbers of groups the rows allow, or the singletons missing.
    UserError: bad counts, or test scores shaped unlike the table.

  Examples:
    >>> table = CombinationTable(masks=[[1, 0], [0, 1], [1, 1]],
    ...                          scores=[[0.3, 0], [0, 0.4], [0.2, 0.5]], score_kind="loss")
    >>> result = select_combinations(table, num_groups=2)
    >>> [g["tasks"] for g in result["groups"]], round(result["total"], 6)
    ([[0], [1]], 0.7)
    >>> select_combinations(table, num_groups=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.InfeasibleError: <combinations>: no partition of the 2 tasks into exactly 3 \
rows; its rows allow partitions into 1 or 2 rows
  """
  m = table.num_tasks
  constraints = Constraints(num_groups=num_groups, max_groups=max_groups)
  if test_scores is not None:
    test_scores = _checked_scores(test_source or "<test scores>", table.masks, test_scores,
                                  table.score_kind)
  rows = _candidates(table)
  sign = -1.0 if table.score_kind == "gain" else 1.0  # solve_measured minimises
  losses = {g: sign * (table.scores[r] if r is not None else np.zeros(m))
            for g, r in rows.items()}
  held = np.zeros(m, dtype=bool)
  for g in rows:
    held[list(g)] = True
  if not held.all():
    absent = np.flatnonzero(~held).tolist()
    raise InfeasibleError(f"{table.source}: task{'s' * (len(absent) > 1)} "
                          f"{', '.join(map(str, absent))} {'are' if len(absent) > 1 else 'is'}"
                          " in no row; every task needs a row that holds it")
  names = [str(t) for t in range(m)]
  try:
    grouping = solve_measured(names, losses, constraints, overlap, time_limit_s)
  except InfeasibleError:
    raise InfeasibleError(_infeasible_message(table, losses, overlap, num_groups, max_groups,
                                              time_limit_s)) from None
  groups = [tuple(int(t) for t in g) for g in grouping.groups]
  assignment = [grouping.assignment[name] for name in names]

  def total(scores: np.ndarray, tasks) -> float:
    # An implied singleton's row is None: its score is 0 by definition.
    return math.fsum(0.0 if rows[groups[assignment[t]]] is None
                     else float(scores[rows[groups[assignment[t]]], t]) for t in tasks)

  serves = [[t for t, k in enumerate(assignment) if k == slot] for slot in range(len(groups))]
  return {
      "groups": [{"tasks": list(g), "row": rows[g], "serves": served,
                  "total": total(table.scores, served)}
                 for g, served in zip(groups, serves)],
      "assignment": assignment,
      "total": total(table.scores, range(m)),
      "test_total": None if test_scores is None else total(test_scores, range(m)),
      "status": grouping.status,
      "score_kind": table.score_kind,
      "overlap": bool(overlap),
      "num_groups": constraints.num_groups,
      "max_groups": constraints.max_groups,
      "combinations": table.source,
      "scores": table.scores_source,
      "test_scores": test_source if test_scores is not None else None,
  }
