"""Every command and snippet in README.md and docs/*.md runs as written.

The conventions of those files:

- a ```python block runs in order with the file's other python blocks, in one
  namespace per file; a block with ``>>>`` prompts is a doctest (its printed
  output is checked), any other block is executed;
- a ```sh block is run line by line with bash from the repository root (a line
  ending in ``\\`` continues), in one shell per file, and every line must exit 0.
  Workdirs are written under ``/tmp/tgroup_runs/`` (not ``/tmp/tgroup/``: a folder
  named like the package would shadow it for Python started in ``/tmp``), which
  the test points at a fresh temporary directory;
- an HTML comment ``<!-- docs test: slow -->`` right above a block runs it
  only under ``-m slow``, where the whole file runs in order (so a fast block
  must not need a slow block's output);
- a command that cannot run here (an accelerator, files that cannot be
  downloaded, several hosts, the test suite itself) stands in a ```text block
  right below ``<!-- not run by the docs test: REASON -->``; such blocks are
  listed by :func:`test_every_unrun_block_says_why`, and no other text block
  may hold a command.
"""
from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from typing import NamedTuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                               if f.endswith(".md"))
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!-- (docs test: slow|not run by the docs test: (.+)) -->$")


class Block(NamedTuple):
  path: str
  line: int           # 1-based line of the opening fence
  language: str
  code: str
  slow: bool
  not_run: str | None  # the reason, for a block that is not run


def blocks(path: str) -> list[Block]:
  """The fenced blocks of a Markdown file, with the marks above them."""
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    lines = f.read().splitlines()
  out, k = [], 0
  while k < len(lines):
    match = _FENCE.match(lines[k])
    if not match:
      k += 1
      continue
    end = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
    mark = _MARK.match(lines[k - 1]) if k > 0 else None
    out.append(Block(path, k + 1, match.group(1), "\n".join(lines[k + 1:end]) + "\n",
                     bool(mark and mark.group(1) == "docs test: slow"),
                     mark.group(2) if mark and mark.group(2) else None))
    k = end + 1
  return out


def commands(code: str) -> list[str]:
  """A sh block's commands: continued lines joined, comment lines and blank lines dropped."""
  out, current = [], ""
  for line in code.splitlines():
    if not current and (not line.strip() or line.lstrip().startswith("#")):
      continue
    current += line[:-1] + " " if line.endswith("\\") else line
    if not line.endswith("\\"):
      out.append(current)
      current = ""
  return out


def _runs(path: str, slow: bool) -> list[Block]:
  """The file's blocks a run includes: the fast ones, or all of them when slow."""
  return [b for b in blocks(path) if b.language in ("python", "sh") and (slow or not b.slow)]


def _cases():
  for path in FILES:
    fast = _runs(path, slow=False)
    everything = _runs(path, slow=True)
    if fast:
      yield pytest.param(path, False, id=path)
    if len(everything) > len(fast):
      yield pytest.param(path, True, id=f"{path}-slow", marks=pytest.mark.slow)


def _run_python(block: Block, globs: dict) -> None:
  where = f"{block.path}:{block.line}"
  if ">>>" in block.code:
    test = doctest.DocTestParser().get_doctest(block.code, globs, where, block.path, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda text: pytest.fail(f"{where}:\n{text}", pytrace=False),
               clear_globs=False)
    globs.update(test.globs)  # DocTest runs in a copy: later blocks see this one's names
  else:
    exec(compile(block.code, where, "exec"), globs)  # pylint: disable=exec-used


@pytest.mark.parametrize("path, slow", list(_cases()))
def test_blocks_run_as_written(path, slow, tmp_path, monkeypatch):
  work = str(tmp_path) + "/"
  globs = {"__name__": "__docs__"}
  monkeypatch.chdir(ROOT)
  for block in _runs(path, slow):
    where = f"{block.path}:{block.line}"
    if block.language == "python":
      code = block.code.replace("/tmp/tgroup_runs/", work)
      _run_python(block._replace(code=code), globs)
      continue
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    for command in commands(block.code):
      command = command.replace("/tmp/tgroup_runs/", work)
      proc = subprocess.run(["bash", "-c", "set -o pipefail; " + command], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=3600)
      assert proc.returncode == 0, (f"{where}: `{command}` exited {proc.returncode}\n"
                                    f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def test_every_unrun_block_says_why():
  unrun = [b for path in FILES for b in blocks(path) if b.language not in ("python", "sh")]
  for block in unrun:
    if block.not_run is None:
      looks_like_a_command = any(re.match(r"\s*(python3?|pip|make|bash|sh|jax|tfds)\b", line)
                                 for line in block.code.splitlines())
      assert not looks_like_a_command, (f"{block.path}:{block.line}: a command in a "
                                        f"```{block.language} block; make it ```sh or mark why "
                                        "it is not run")
  reasons = sorted({(b.path, b.not_run) for b in unrun if b.not_run})
  assert all(reason.strip() for _, reason in reasons)


def test_every_path_and_name_the_docs_cite_exists():
  """Docs name modules, files and functions: each must exist, so moving code fails here."""
  import importlib  # pylint: disable=g-import-not-at-top
  for path in FILES:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
      text = f.read()
    for cited in sorted(set(re.findall(r"`((?:tgroup|launch|tests|notebooks)/[\w/.]+\.\w+)`",
                                       text))):
      assert os.path.exists(os.path.join(ROOT, cited)), f"{path} cites {cited}, which is gone"
    for dotted in sorted(set(re.findall(r"`(tgroup(?:\.\w+)+)", text))):
      parts = dotted.split(".")
      obj, k = None, len(parts)
      while obj is None and k > 0:  # the longest importable module, then attributes
        try:
          obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
          k -= 1
      for name in parts[k:]:
        assert hasattr(obj, name), f"{path} cites {dotted}: no {name!r}"
        obj = getattr(obj, name)


def test_make_test_is_what_ci_runs():
  """The README's one command no test can run is the command CI runs."""
  with open(os.path.join(ROOT, ".ci", "run")) as f:
    assert "make test" in f.read()
  with open(os.path.join(ROOT, "Makefile")) as f:
    makefile = f.read()
  assert "pytest -q -n auto" in makefile.split("test:")[1].split("\n\n")[0]
