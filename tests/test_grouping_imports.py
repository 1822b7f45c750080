"""tgroup.grouping stays free of JAX and of the model side of tgroup."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
import tgroup.grouping
print(json.dumps(sorted(sys.modules)))
"""


def test_grouping_imports_no_jax():
  out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  modules = json.loads(out.strip().splitlines()[-1])
  heavy = [m for m in modules
           if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "chex")]
  assert not heavy, heavy
  ours = [m for m in modules if m == "tgroup" or m.startswith("tgroup.")]
  allowed = {"tgroup", "tgroup.errors", "tgroup.grouping", "tgroup.lazy"}  # lazy: the root's loader
  stray = [m for m in ours
           if m not in allowed and not m.startswith("tgroup.grouping.")]
  assert not stray, stray
