"""Atomic file writes and JSON helpers (no half-written result ever replaces a good one)."""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from tgroup import distributed
from tgroup.errors import UserError


def atomic_write_bytes(path: str, payload: bytes) -> None:
  """Writes to a temporary file in the same directory, fsyncs, then renames.

  In a distributed run only process 0 writes (:func:`tgroup.distributed.writes_files`):
  every process holds the same results, and one copy is what a shared disk wants.
  """
  if not distributed.writes_files():
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  """Atomically writes ``obj`` as indented JSON; refuses NaN/inf (not JSON)."""
  atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode())


def read_json(path: str) -> Any:
  r"""Reads JSON with a one-line error naming the file and line on bad input.

  Examples:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "cut.json")
    >>> with open(path, "w") as f:
    ...   _ = f.write('{"tasks": ["a",\n')
    >>> read_json(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: ...cut.json:2: not valid JSON (Expecting value)
  """
  return _parse_json(path, read_text(path))


def read_json_located(path: str) -> tuple[Any, Callable[[Sequence[str | int]], str]]:
  r""":func:`read_json`, plus ``where(keys) -> "path:LINE"`` for messages about its content.

  ``keys`` is a path into the document (object keys and list indices); the line
  is that value's, or its deepest existing parent's when it is missing, so a
  check on the parsed data can name the line as a syntax error does.

  Examples:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "g.json")
    >>> with open(path, "w") as f:
    ...   _ = f.write('{"tasks": ["a", "b"],\n "gains": [[1, 2],\n  [3]]}\n')
    >>> obj, where = read_json_located(path)
    >>> where(("gains", 1)).endswith("g.json:3"), where(("counts",)).endswith("g.json:1")
    (True, True)
  """
  text = read_text(path)
  obj = _parse_json(path, text)
  return obj, lambda keys: f"{path}:{json_line(text, keys)}"


def read_text(path: str) -> str:
  """A UTF-8 text file's contents, or a UserError naming the path and what is wrong."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise UserError(f"{path}: no such file") from None
  except OSError as e:  # a directory, no permission, ...
    raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    lineno = data[:e.start].count(b"\n") + 1
    raise UserError(f"{path}:{lineno}: not UTF-8 text") from None


def _parse_json(path: str, text: str) -> Any:
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def json_line(text: str, keys: Sequence[str | int]) -> int:
  r"""The 1-based line where the value at ``keys`` starts in the valid JSON ``text``.

  Walks down object keys and list indices; where one is missing, the line of
  the deepest value found. A repeated key resolves to its last occurrence, as
  in :func:`json.loads`.

  Examples:
    >>> json_line('{"a": 1,\n "b": [0,\n  [5, 6]]}', ("b", 1, 0))
    3
    >>> json_line('{"a": 1,\n "b": 2}', ("c",))
    1
  """
  pos = _SPACE.match(text, 0).end()
  for key in keys:
    child = _child(text, pos, key)
    if child is None:
      break
    pos = child
  return text.count("\n", 0, pos) + 1


def _child(text: str, pos: int, key: str | int) -> int | None:
  """Where the value of ``key`` starts in the object or list at ``pos``, or None."""
  opener = text[pos:pos + 1]
  if opener == "{" and isinstance(key, str):
    closer = "}"
  elif opener == "[" and isinstance(key, int):
    closer = "]"
  else:
    return None
  found, index = None, 0
  pos = _SPACE.match(text, pos + 1).end()
  while pos < len(text) and text[pos] != closer:
    if closer == "}":
      name, pos = _DECODER.raw_decode(text, pos)
      pos = _SPACE.match(text, _SPACE.match(text, pos).end() + 1).end()  # past the colon
      if name == key:
        found = pos
    elif index == key:
      return pos
    _, pos = _DECODER.raw_decode(text, pos)  # skip the value
    pos = _SPACE.match(text, pos).end()
    if text[pos:pos + 1] == ",":
      pos = _SPACE.match(text, pos + 1).end()
    index += 1
  return found


def finite_or_none(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None
