"""The QM9 data: qm9pack's CSV files, the subsample and its splits, the targets' transforms.

Molecules are read straight from the CSV files of the ``qm9pack`` wheel (its own
loader needs ``pkg_resources`` and pandas), padded to :data:`MAX_ATOMS` atoms.
The subsample is a prefix of one seeded permutation, so a larger subsample
contains every smaller one; the transforms are fitted on its training split.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
from typing import NamedTuple, Sequence

import numpy as np

from tgroup.errors import UserError

TARGETS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "cv")
UNITS = {"mu": "D", "alpha": "bohr^3", "homo": "Ha", "lumo": "Ha", "r2": "bohr^2",
         "zpve": "Ha", "U0": "Ha", "U": "Ha", "H": "Ha", "G": "Ha", "cv": "cal/(mol K)"}
# Column names of qm9pack's CSV files (its spelling, "Enthalphy" included).
_COLUMNS = {"mu": "Dipole_debye", "alpha": "Polarizability_bohr3", "homo": "HOMO_au",
            "lumo": "LUMO_au", "r2": "R2_bohr2", "zpve": "ZPVE_au",
            "U0": "InternalEnergy_0K_au", "U": "InternalEnergy_298K_au",
            "H": "Enthalphy_298K_au", "G": "GibbsFreeEnergy_298K_au",
            "cv": "Heatcapacity_Cv_cal_mol_K"}
_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
NUM_MOLECULES = 130_831
MAX_ATOMS = 29
ELEMENTS = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS = np.array([1, 6, 7, 8, 9])
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
INSTALL_HINT = "the qm9 benchmark needs the qm9pack package: pip install -e '.[qm9]'"


class Molecules(NamedTuple):
  """Molecules padded to :data:`MAX_ATOMS` atoms.

  Attributes:
    species: ``(n, 29)`` int, an index into :data:`ELEMENTS`; −1 marks padding.
    coords: ``(n, 29, 3)`` float32 positions in Å (0 for padding).
    targets: ``(n, 11)`` float64 in :data:`TARGETS` order, original units.
    index: ``(n,)`` the QM9 molecule number (``dsgdb9nsd_<index>.xyz``).
  """
  species: np.ndarray
  coords: np.ndarray
  targets: np.ndarray
  index: np.ndarray


def data_dir() -> str | None:
  """The folder of qm9pack's CSV files, or None when qm9pack is not installed.

  Found without importing qm9pack (its import needs pandas and pkg_resources).
  """
  spec = importlib.util.find_spec("qm9pack")
  if spec is None or not spec.submodule_search_locations:
    return None
  folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
  return folder if all(os.path.exists(os.path.join(folder, f)) for f in _FILES) else None


def require_data_dir() -> str:
  """:func:`data_dir`, or a one-line :class:`UserError` saying how to install it."""
  folder = data_dir()
  if folder is None:
    raise UserError(INSTALL_HINT)
  return folder


def load_molecules(rows: Sequence[int] | None = None, directory: str | None = None
                   ) -> Molecules:
  """Reads molecules by row (0 … 130,830 in file order, sorted by QM9 index).

  Only the requested rows are parsed; reading stops after the last one. The
  whole set takes ≈ 3 s to scan on a laptop CPU.

  Args:
    rows: row numbers, returned in this order (None: all molecules).
    directory: the CSV folder (None: qm9pack's).

  Raises:
    UserError: qm9pack is missing, or a row is out of range.
  """
  directory = directory or require_data_dir()
  wanted = np.arange(NUM_MOLECULES) if rows is None else np.asarray(rows, int)
  if wanted.size and (wanted.min() < 0 or wanted.max() >= NUM_MOLECULES):
    raise UserError(f"QM9 rows must be in [0, {NUM_MOLECULES}), got {wanted.min()}…"
                    f"{wanted.max()}")
  slot = {int(r): k for k, r in enumerate(wanted)}
  n = len(wanted)
  out = Molecules(np.full((n, MAX_ATOMS), -1, np.int8), np.zeros((n, MAX_ATOMS, 3), np.float32),
                  np.zeros((n, len(TARGETS))), np.zeros(n, np.int64))
  last = max(slot, default=-1)
  row = 0
  for name in _FILES:
    if row > last:
      break
    with open(os.path.join(directory, name), newline="") as f:
      reader = csv.reader(f)
      header = next(reader)
      col = {c: header.index(c) for c in
             ["Index", "Elements", "XYZ_Ang", *_COLUMNS.values()]}
      for fields in reader:
        if row in slot:
          _parse_row(fields, col, out, slot[row])
        row += 1
        if row > last:
          break
  if rows is None and row != NUM_MOLECULES:
    raise UserError(f"qm9pack holds {row} molecules, expected {NUM_MOLECULES}; "
                    "reinstall it (pip install -e '.[qm9]')")
  return out


def _parse_row(fields: list[str], col: dict, out: Molecules, k: int) -> None:
  elements = [e.strip("' ") for e in fields[col["Elements"]].strip("[]").split(",")]
  xyz = np.array(fields[col["XYZ_Ang"]].replace("[", "").replace("]", "").split(","), float)
  out.species[k, :len(elements)] = [ELEMENTS.index(e) for e in elements]
  out.coords[k, :len(elements)] = xyz.reshape(len(elements), 3)
  out.targets[k] = [float(fields[col[_COLUMNS[t]]]) for t in TARGETS]
  out.index[k] = int(fields[col["Index"]])


def split_rows(subsample: int, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Train, validation and test rows: the first ``subsample`` of a seeded permutation.

  Examples:
    >>> train, val, test = split_rows(1000)
    >>> len(train), len(val), len(test)
    (800, 100, 100)
    >>> bool(np.isin(split_rows(500)[2], split_rows(2000)[0]).any())  # nested, not aligned
    True
  """
  if not 10 <= subsample <= NUM_MOLECULES:
    raise UserError(f"subsample must be between 10 and {NUM_MOLECULES}, got {subsample}")
  chosen = np.random.default_rng(split_seed).permutation(NUM_MOLECULES)[:subsample]
  n_train, n_val, _ = split_sizes(subsample)
  return chosen[:n_train], chosen[n_train:n_train + n_val], chosen[n_train + n_val:]


def split_sizes(subsample: int) -> tuple[int, int, int]:
  """Train, validation and test sizes of a subsample (validation = test = 10 %)."""
  n_val = n_test = int(round(subsample * SPLIT_FRACTIONS[1]))
  return subsample - n_val - n_test, n_val, n_test


def min_subsample(batch_size: int) -> int:
  """The smallest subsample whose training split holds one batch."""
  n = batch_size
  while split_sizes(n)[0] < batch_size:
    n += 1
  return n


@dataclasses.dataclass(frozen=True)
class Standardiser:
  """Per-column mean and scale of training values: ``(values − mean) / scale``.

  Examples:
    >>> s = Standardiser.fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> s.apply(np.array([[3.0, 10.0]])).tolist(), s.scale.tolist()
    ([[1.0, -1.0]], [1.0, 10.0])
  """
  mean: np.ndarray
  scale: np.ndarray

  @classmethod
  def fit(cls, values: np.ndarray, min_scale: float = 0.0) -> "Standardiser":
    """Mean and standard deviation per column; a zero deviation becomes 1.

    ``min_scale`` floors the scale: a column nearly constant in training (a rare
    element pair) would otherwise turn a modest held-out value into a huge input.
    """
    std = values.std(0)
    return cls(values.mean(0), np.where(std > 0, np.maximum(std, min_scale), 1.0))

  def apply(self, values: np.ndarray) -> np.ndarray:
    return (values - self.mean) / self.scale


@dataclasses.dataclass(frozen=True)
class TargetTransform:
  """``(target − atom-reference baseline − mean) / scale`` per task.

  The baseline is ``counts @ weights`` with ``counts`` the element counts of a
  molecule plus a constant 1; ``weights`` is the least-squares fit on the
  training split (zero without the atom reference, so the transform is a plain
  standardisation). The mean is then folded into the constant's weight.

  Examples:
    >>> counts = np.array([[1, 0], [2, 0], [2, 1], [1, 1]])  # e.g. C and O counts
    >>> energy = counts @ [-38.0, -75.0] + np.array([0.01, -0.01, 0.02, -0.02])
    >>> t = TargetTransform.fit(energy[:, None], counts)
    >>> float(t.scale[0]) < 0.02  # the residual's spread, not the energies'
    True
    >>> float(TargetTransform.fit(energy[:, None], counts, atom_reference=False).scale[0]) > 10
    True
  """
  weights: np.ndarray  # (elements + 1, m)
  scale: np.ndarray  # (m,)

  @classmethod
  def fit(cls, targets: np.ndarray, counts: np.ndarray, atom_reference: bool = True
          ) -> "TargetTransform":
    design = _design(counts)
    if atom_reference:
      weights = np.linalg.lstsq(design, targets, rcond=None)[0]
    else:
      weights = np.zeros((design.shape[1], targets.shape[1]))
      weights[-1] = targets.mean(0)
    std = (targets - design @ weights).std(0)
    return cls(weights, np.where(std > 0, std, 1.0))

  def apply(self, targets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return (targets - _design(counts) @ self.weights) / self.scale


def _design(counts: np.ndarray) -> np.ndarray:
  return np.concatenate([np.asarray(counts, np.float64), np.ones((len(counts), 1))], axis=1)


def element_counts(species: np.ndarray) -> np.ndarray:
  """``(n, 5)`` atoms of each element (H, C, N, O, F) per molecule."""
  return np.stack([(np.asarray(species) == e).sum(1) for e in range(len(ELEMENTS))], 1)


def check_tasks(names: Sequence[str]) -> tuple[str, ...]:
  """Task names in the order given; a one-line UserError for unknown or repeated ones."""
  names = tuple(names)
  unknown = [t for t in names if t not in TARGETS]
  if unknown or not names:
    raise UserError(f"unknown QM9 task(s) {unknown}; valid tasks: {', '.join(TARGETS)}")
  if len(set(names)) != len(names):
    raise UserError(f"QM9 tasks repeat: {list(names)}")
  return names
