"""Atomic checkpoints of JAX pytrees: one NumPy ``.npz`` file per checkpoint.

A checkpoint holds every leaf of a pytree (parameters, optimizer state, typed
PRNG keys, accumulators) plus a small JSON record (the step, a fingerprint of
the run). It is written to a temporary file in the same directory, fsynced and
renamed (:func:`tgroup.io.atomic_write_bytes`), so a process killed at any
instant leaves either the previous checkpoint or the new one, never a mix; the
record travels inside the same file for the same reason.

Why NumPy rather than orbax-checkpoint: the states checkpointed here live on one
host and are small (an all-tasks network and (m, m) accumulators); one ``.npz``
is atomic with a plain rename and adds no dependency. Restoring needs a template
of the tree (a freshly initialised state): it supplies the structure, and every
leaf's shape and dtype is checked against it, so a checkpoint of another model
is refused instead of half-loaded.
"""
from __future__ import annotations

import io as io_lib
import json
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tgroup import io
from tgroup.errors import UserError

FORMAT = "tgroup-checkpoint-1"
_RECORD = "__record__"


def _is_key(leaf) -> bool:
  return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save(path: str, tree: Any, record: dict) -> None:
  """Atomically writes every leaf of ``tree`` and the JSON-able ``record`` to ``path``.

  Typed PRNG keys are stored as their raw key data with the name of their
  implementation, and come back as typed keys.

  Examples:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
    >>> tree = {"w": jnp.arange(3.0), "key": jax.random.key(1)}
    >>> save(path, tree, {"step": 7})
    >>> back, record = restore(path, tree)
    >>> back["w"].tolist(), record["step"], bool((jax.random.key_data(back["key"])
    ...                                           == jax.random.key_data(tree["key"])).all())
    ([0.0, 1.0, 2.0], 7, True)
  """
  leaves = jax.tree.leaves(tree)
  arrays, kinds = {}, []
  for i, leaf in enumerate(leaves):
    if _is_key(leaf):
      arrays[f"leaf{i}"] = np.asarray(jax.random.key_data(leaf))
      kinds.append({"key": str(jax.random.key_impl(leaf))})
    else:
      arrays[f"leaf{i}"] = np.asarray(leaf)
      # Named so that dtypes NumPy cannot store natively (bfloat16) come back.
      kinds.append({"dtype": jnp.dtype(arrays[f"leaf{i}"].dtype).name})
  meta = {"format": FORMAT, "leaves": kinds, "record": record}
  arrays[_RECORD] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), np.uint8)
  buffer = io_lib.BytesIO()
  np.savez(buffer, **arrays)
  io.atomic_write_bytes(path, buffer.getvalue())


def restore(path: str, like: Any, fingerprint: Any = None) -> tuple[Any, dict]:
  """Reads a checkpoint written by :func:`save` into the structure of ``like``.

  Args:
    path: the checkpoint file.
    like: a tree of the same structure, shapes and dtypes (e.g. a freshly
      initialised state); its values are not used.
    fingerprint: if given, must equal ``record["fingerprint"]`` (after a JSON
      round trip): a checkpoint of another run is refused, never mixed in.

  Returns:
    ``(tree, record)``: fresh device arrays (safe to donate) and the record.

  Raises:
    UserError: one line naming ``path``: unreadable or corrupted, of another
      format, structure, shape or dtype, or of another run.
  """
  try:
    with np.load(path, allow_pickle=False) as npz:
      meta = json.loads(npz[_RECORD].tobytes().decode())
      stored = [npz[f"leaf{i}"] for i in range(len(meta["leaves"]))]
  except FileNotFoundError:
    raise UserError(f"{path}: no such checkpoint") from None
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: corrupted checkpoint ({type(e).__name__}: {e}); delete it to "
                    "start over") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise UserError(f"{path}: not a {FORMAT} file; delete it to start over")
  record = meta["record"]
  if fingerprint is not None:
    expected = json.loads(json.dumps(fingerprint))
    found = record.get("fingerprint") if isinstance(record, dict) else None
    if found != expected:
      raise UserError(f"{path}: checkpoint of another run ({_first_difference(found, expected)}); "
                      "delete it, or rerun with the settings that wrote it")
  template, treedef = jax.tree.flatten(like)
  if len(template) != len(stored):
    raise UserError(f"{path}: holds {len(stored)} arrays, this run's state has {len(template)}; "
                    "delete it to start over")
  leaves = [_leaf(path, i, want, array, kind)
            for i, (want, array, kind) in enumerate(zip(template, stored, meta["leaves"]))]
  return jax.tree.unflatten(treedef, leaves), record


def _leaf(path: str, i: int, want, array: np.ndarray, kind: dict):
  """One stored array as a fresh device array shaped and typed like ``want``."""
  if "key" in kind:
    if not _is_key(want):
      raise UserError(f"{path}: array {i} is a PRNG key, this run's state has an array there")
    key = jax.random.wrap_key_data(jnp.array(array), impl=kind["key"])
    if key.shape != want.shape or key.dtype != want.dtype:
      raise UserError(f"{path}: PRNG key {i} is {key.dtype}{list(key.shape)}, this run's is "
                      f"{want.dtype}{list(want.shape)}")
    return key
  dtype = jnp.dtype(kind["dtype"])
  if array.dtype != dtype:
    array = array.view(dtype)  # e.g. bfloat16, stored by NumPy as raw 2-byte records
  want_dtype = jnp.dtype(want.dtype) if hasattr(want, "dtype") else np.asarray(want).dtype
  if array.shape != np.shape(want) or dtype != want_dtype:
    raise UserError(f"{path}: array {i} is {dtype}{list(array.shape)}, this run's state has "
                    f"{want_dtype}{list(np.shape(want))}; delete it to start over")
  return jnp.array(array)  # a copy: the update function donates its input buffers


def _first_difference(found: Any, expected: Any, where: str = "") -> str:
  """Where two JSON values first differ, for the error message."""
  if isinstance(found, dict) and isinstance(expected, dict):
    for k in sorted(set(found) | set(expected), key=str):
      if found.get(k) != expected.get(k):
        return _first_difference(found.get(k), expected.get(k), f"{where}.{k}" if where else k)
  label = where or "fingerprint"
  return f"{label}: {json.dumps(found)[:60]} there, {json.dumps(expected)[:60]} now"
