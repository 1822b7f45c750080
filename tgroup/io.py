"""Atomic file writes and JSON helpers (no half-written result ever replaces a good one)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from tgroup.errors import UserError


def atomic_write_bytes(path: str, payload: bytes) -> None:
  """Writes to a temporary file in the same directory, fsyncs, then renames."""
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
  """Reads JSON with a one-line error naming the file and line on bad input."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserError(f"{path}: no such file") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def finite_or_none(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None
