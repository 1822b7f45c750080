"""How every launcher starts and ends (docs/contract.md), with no JAX import.

``run(main)`` is ``app.run`` plus the contract's error handling: a mistake a user
can make (:class:`tgroup.errors.UserError`, a bad flag value, a stray argument)
prints one line ``error: ...`` and exits with status 2, never a traceback.
Launchers call ``flags.adopt_module_key_flags(cli)`` so ``--helpshort`` lists
``--quiet``.
"""
from __future__ import annotations

import json
import logging as std_logging
import os
import sys
import tempfile
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from tgroup import io
from tgroup.errors import UserError

QUIET = flags.DEFINE_bool("quiet", False, "No progress lines and no results table.")
COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache",
    os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "tgroup", "xla"),
    "Directory of JAX's persistent compilation cache: a second run of the same problem loads "
    "its compiled programs instead of compiling (seconds on a CPU). Empty: off.")


def run(main: Callable[[list[str]], None]) -> None:
  """``app.run(main)`` with one-line errors and exit status 2 for user mistakes."""

  def guarded(argv):
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]} (flags look like --name=value)")
    if not QUIET.value:
      logging.set_verbosity(logging.INFO)
    # JAX reports each accelerator plugin it did not find; that is not news on a CPU.
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
    if "jax" in sys.modules and COMPILATION_CACHE.value:  # tools without JAX skip it
      _enable_compilation_cache(os.path.expanduser(COMPILATION_CACHE.value))
    try:
      main(argv)
    except UserError as e:
      fail(str(e))

  app.run(guarded, flags_parser=_parse_flags)


def _enable_compilation_cache(directory: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top  (only launchers that use JAX get here)
  jax.config.update("jax_compilation_cache_dir", directory)
  # Cache every program that took noticeable time to compile (JAX's default is 1 s).
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{e} (see --helpshort)")


def check_workdir(path: str) -> str:
  """``path`` if a run can write its results there, else a one-line UserError.

  Checked before any training, so that a run does not spend its time and then
  fail to save: the directory may exist (earlier results stay until replaced)
  or be creatable, i.e. its nearest existing ancestor is a writable directory.
  Nothing is created here.

  Examples:
    >>> import tempfile
    >>> a_file = tempfile.mkstemp()[1]
    >>> check_workdir(a_file)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: --workdir=... is a file, not a directory
    >>> check_workdir(os.path.join(a_file, "run"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tgroup.errors.UserError: --workdir=.../run cannot be created: ... is a file, not a directory
  """
  full = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(full) and not os.path.isdir(full):
    raise UserError(f"--workdir={path} is a file, not a directory")
  existing = full
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise UserError(f"--workdir={path} cannot be created: {existing} is a file, "
                    "not a directory")
  # Writing is the only reliable test: os.access says yes to root on a
  # read-only mount or a pseudo file system.
  try:
    fd, probe = tempfile.mkstemp(dir=existing, prefix=".tgroup-write-test-")
  except OSError as e:
    what = "is" if existing == full else f"cannot be created: {existing} is"
    raise UserError(f"--workdir={path} {what} not writable ({e.strerror or e})") from None
  os.close(fd)
  os.unlink(probe)
  return path


def check_seed(seed: int) -> int:
  """``seed`` if NumPy and JAX accept it (>= 0), else a one-line UserError."""
  if seed < 0:
    raise UserError(f"--seed must be >= 0, got {seed}")
  return seed


def fail(message: str) -> None:
  """Prints ``error: message`` on stderr and exits with status 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def emit(result: dict, summary: str, output: str | None) -> None:
  """The end of a tool: write ``result`` to ``output`` (atomically), print ``summary``.

  With ``--quiet`` nothing is printed, unless there is no ``output``: then the
  JSON goes to stdout, for scripts.
  """
  if output:
    try:
      io.write_json(output, result)
    except OSError as e:
      raise UserError(f"cannot write {output}: {e.strerror or e}") from None
  if not QUIET.value:
    print(summary)
    if output:
      print(f"wrote {output}")
  elif not output:
    print(json.dumps(result, indent=1))
