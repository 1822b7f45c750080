"""QM9: 11 standard regression targets of 130,831 small organic molecules.

The data come from the ``qm9pack`` package (``pip install -e .[qm9]``), whose wheel
ships the whole QM9 set as CSV files: element lists, DFT-relaxed 3-D coordinates
(Å) and the computed properties. We read those files directly (the package's
own loader needs ``pkg_resources`` and pandas); nothing is downloaded.

Tasks are the 11 targets of the usual multi-task QM9 setting, in the data's own
units (the reported MAE is in these units):

====== ======================================= ===================
task   property                                unit
====== ======================================= ===================
mu     dipole moment                           debye
alpha  isotropic polarisability                bohr³
homo   HOMO energy                             hartree
lumo   LUMO energy                             hartree
r2     electronic spatial extent ⟨R²⟩          bohr²
zpve   zero-point vibrational energy           hartree
U0     internal energy at 0 K                  hartree
U      internal energy at 298.15 K             hartree
H      enthalpy at 298.15 K                    hartree
G      free energy at 298.15 K                 hartree
cv     heat capacity at 298.15 K               cal/(mol K)
====== ======================================= ===================

U0, U, H and G differ by thermal corrections of a few hundredths of a hartree
on values of −40 to −700 hartree (correlation 1.000 over the data set): a
grouping method that does not put them together is broken. That is this
benchmark's sanity check.

Split: a permutation of all 130,831 molecules drawn with ``split_seed``; the first
``subsample`` molecules of it are used, 80 % train, 10 % validation, 10 % test.
A larger subsample contains every smaller one.

Targets (:class:`TargetTransform`): per task, an atom-reference baseline, a
least-squares fit of the target on the element counts (plus a constant) over
the training split, is subtracted, and the residual is standardised by its
training mean and standard deviation. Why the baseline: a total energy is
mostly a sum of per-atom energies (std ≈ 40 hartree over QM9, of which a linear
fit on the counts leaves 0.04); standardised raw, a useful prediction must be
right to 1e-3 standard deviations, and an MLP trained for 3,000 steps was
measured ≈ 37 times worse on U0 than the count fit alone (MAE 1.19 vs 0.032
hartree, 20,000 molecules). ``atom_reference=False`` standardises the raw
targets instead. The residual energies still correlate ≥ 0.998 with each other.
The loss is MSE on transformed targets, the metric the MAE in the original
units (the baseline is known per molecule, so errors are the same before and
after subtracting it, up to the scale).

Two models share the same heads (one linear read-out per target):

- ``descriptors`` (CPU default): fixed-size descriptors computed in NumPy
  (:func:`descriptors`), standardised on the training split, into an MLP trunk.
- ``mpnn``: a compact continuous-filter message-passing network over atoms and
  interatomic distances (:class:`MessagePassingTrunk`), padded to 29 atoms with
  masks; meant for accelerators.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import models
from tgroup import tasks as tasks_lib
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
BOHR_PER_ANGSTROM = 1.8897261246
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
INSTALL_HINT = "the qm9 benchmark needs the qm9pack package: pip install -e '.[qm9]'"

# Element pairs (a, b) with a <= b, in a fixed order: the blocks of the descriptor.
_PAIRS = tuple((a, b) for a in range(len(ELEMENTS)) for b in range(a, len(ELEMENTS)))
_PAIR_INDEX = np.zeros((len(ELEMENTS), len(ELEMENTS)), int)
for _k, (_a, _b) in enumerate(_PAIRS):
  _PAIR_INDEX[_a, _b] = _PAIR_INDEX[_b, _a] = _k
# Gaussian-smeared distance histogram: centres every 0.25 Å from 0.75 Å (shorter
# than any bond, H-H 0.74 Å) to 7.0 Å; beyond that the 1/r sums carry the range.
DISTANCE_CENTRES = np.linspace(0.75, 7.0, 26)
DISTANCE_WIDTH = 0.25


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


def descriptors(species: np.ndarray, coords: np.ndarray, chunk: int = 2048) -> np.ndarray:
  """Fixed-size descriptors, invariant to atom order, rotation and translation.

  Per molecule, concatenated (``5 + 29 + 15·26 + 15 = 439`` values):

  - atom counts per element (H, C, N, O, F): the energies U0/U/H/G are nearly
    sums of per-atom contributions, so counts alone explain most of their variance;
  - the Coulomb-matrix eigenvalues (Rupp et al. 2012; atomic units), sorted by
    magnitude and zero-padded to 29: a global, order-free summary of nuclear
    charges and geometry;
  - per element pair (15 pairs), a histogram of interatomic distances smeared with
    Gaussians (centres 0.75–7 Å every 0.25 Å, width 0.25 Å, cut at 3 widths): bond types and
    lengths at short range (vibrational energies, heat capacity), molecular shape
    at long range (⟨R²⟩, polarisability);
  - per element pair, the sum of 1/r (Å⁻¹): the long-range tail the histogram cuts.

  Examples:
    >>> species = np.array([[3, 0, 0, -1]])  # water, padded to 4 atoms
    >>> coords = np.array([[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [0, 0, 0]]],
    ...                   np.float32)
    >>> d = descriptors(species, coords)
    >>> d.shape, d[0, :5].tolist()
    ((1, 439), [2.0, 0.0, 0.0, 1.0, 0.0])
  """
  species = np.asarray(species)
  parts = [_descriptors(species[s:s + chunk], np.asarray(coords[s:s + chunk], np.float64))
           for s in range(0, len(species), chunk)]
  return np.concatenate(parts).astype(np.float32) if parts else np.zeros(
      (0, descriptor_size()), np.float32)


def descriptor_size() -> int:
  return len(ELEMENTS) + MAX_ATOMS + len(_PAIRS) * (len(DISTANCE_CENTRES) + 1)


def _descriptors(species: np.ndarray, coords: np.ndarray) -> np.ndarray:
  n, atoms = species.shape
  real = species >= 0
  counts = element_counts(species)
  charge = np.where(real, ATOMIC_NUMBERS[np.maximum(species, 0)], 0).astype(np.float64)
  dist = np.linalg.norm(coords[:, :, None] - coords[:, None, :], axis=-1)
  pair_real = real[:, :, None] & real[:, None, :] & ~np.eye(atoms, dtype=bool)
  inv = np.divide(1.0, dist, out=np.zeros_like(dist), where=pair_real)

  cm = charge[:, :, None] * charge[:, None, :] * inv / BOHR_PER_ANGSTROM
  idx = np.arange(atoms)
  cm[:, idx, idx] = 0.5 * charge ** 2.4
  eig = np.linalg.eigvalsh(cm)
  eig = np.take_along_axis(eig, np.argsort(-np.abs(eig), axis=1), axis=1)
  eig = np.pad(eig, ((0, 0), (0, MAX_ATOMS - atoms)))

  # Each unordered pair of real atoms once (upper triangle), as a flat list: a
  # molecule has ~150 such pairs of the 841 padded ones.
  mol, i, j = np.nonzero(pair_real & np.triu(np.ones((atoms, atoms), bool), 1))
  bucket = mol * len(_PAIRS) + _PAIR_INDEX[species[mol, i], species[mol, j]]
  r = dist[mol, i, j]
  z = (r[:, None] - DISTANCE_CENTRES) / DISTANCE_WIDTH
  # Cut at 3 widths: far tails (1e-40) would be features that are "almost"
  # constant, whose standardisation blows up held-out molecules.
  smeared = np.where(np.abs(z) < 3.0, np.exp(-0.5 * z ** 2), 0.0)
  sums = lambda w: np.bincount(bucket, weights=w, minlength=n * len(_PAIRS))
  hist = np.stack([sums(smeared[:, k]) for k in range(len(DISTANCE_CENTRES))], 1)
  inv_sum = sums(1.0 / r).reshape(n, len(_PAIRS))
  return np.concatenate([counts, eig, hist.reshape(n, -1), inv_sum], axis=1)


def atom_inputs(species: np.ndarray, coords: np.ndarray) -> np.ndarray:
  """``(n, 29, 8)`` inputs of the message-passing model: one-hot element, then x, y, z.

  A padded atom has an all-zero one-hot, which is the model's mask.
  """
  onehot = (np.asarray(species)[..., None] == np.arange(len(ELEMENTS))).astype(np.float32)
  return np.concatenate([onehot, np.asarray(coords, np.float32)], axis=-1)


class MessagePassingTrunk(nn.Module):
  """Continuous-filter message passing over atoms, then a sum over atoms.

  Each interaction updates atom features from neighbours within ``cutoff`` Å,
  with filters computed from Gaussian expansions of the distance and a smooth
  cosine cutoff, so the output is invariant to atom order, rotation and
  translation. The sum read-out keeps extensive properties (energies, ⟨R²⟩)
  extensive. No normalisation layers (the library's models carry no mutable state).

  Examples:
    >>> import jax
    >>> x = atom_inputs(np.array([[3, 0, 0, -1]]), np.array([[[0, 0, 0], [0.96, 0, 0],
    ...                 [-0.24, 0.93, 0], [0, 0, 0]]]))
    >>> trunk = MessagePassingTrunk(width=8, num_interactions=1, num_rbf=4)
    >>> params = trunk.init(jax.random.key(0), x)["params"]
    >>> trunk.apply({"params": params}, x).shape
    (1, 8)
  """
  width: int = 64
  num_interactions: int = 3
  num_rbf: int = 16
  cutoff: float = 5.0

  @nn.compact
  def __call__(self, atoms):
    onehot, xyz = atoms[..., :len(ELEMENTS)], atoms[..., len(ELEMENTS):]
    mask = jnp.sum(onehot, -1)
    square = jnp.sum(jnp.square(xyz[:, :, None] - xyz[:, None, :]), -1)
    dist = jnp.sqrt(jnp.maximum(square, 1e-12))  # no NaN gradient on the diagonal
    eye = jnp.eye(atoms.shape[1], dtype=atoms.dtype)
    envelope = 0.5 * (jnp.cos(jnp.pi * jnp.minimum(dist / self.cutoff, 1.0)) + 1.0)
    pair = mask[:, :, None] * mask[:, None, :] * (1.0 - eye) * envelope
    centres = jnp.linspace(0.0, self.cutoff, self.num_rbf)
    gamma = 0.5 / (centres[1] - centres[0]) ** 2
    rbf = jnp.exp(-gamma * jnp.square(dist[..., None] - centres))
    h = nn.Dense(self.width)(onehot)
    for _ in range(self.num_interactions):
      filters = nn.Dense(self.width)(rbf) * pair[..., None]
      messages = jnp.einsum("bijw,bjw->biw", filters, nn.Dense(self.width, use_bias=False)(h))
      h = h + nn.Dense(self.width)(nn.silu(nn.Dense(self.width)(messages)))
      h = h * mask[..., None]
    per_atom = nn.Dense(self.width)(nn.silu(nn.Dense(self.width)(h)))
    return jnp.sum(per_atom * mask[..., None], axis=1)


@dataclasses.dataclass(frozen=True)
class Standardiser:
  """Per-task mean and scale of the training targets, and their inverse.

  Examples:
    >>> s = Standardiser.fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> s.apply(np.array([[3.0, 10.0]])).tolist(), s.scale.tolist()
    ([[1.0, -1.0]], [1.0, 10.0])
    >>> s.invert(s.apply(np.array([[2.5, 7.0]]))).tolist()
    [[2.5, 7.0]]
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

  def invert(self, values: np.ndarray) -> np.ndarray:
    return values * self.scale + self.mean


@dataclasses.dataclass(frozen=True)
class TargetTransform:
  """``(target − atom-reference baseline − mean) / scale`` per task, and its inverse.

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
    >>> np.allclose(t.invert(t.apply(energy[:, None], counts), counts)[:, 0], energy)
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

  def invert(self, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return values * self.scale + _design(counts) @ self.weights


def _design(counts: np.ndarray) -> np.ndarray:
  return np.concatenate([np.asarray(counts, np.float64), np.ones((len(counts), 1))], axis=1)


def element_counts(species: np.ndarray) -> np.ndarray:
  """``(n, 5)`` atoms of each element (H, C, N, O, F) per molecule."""
  return np.stack([(np.asarray(species) == e).sum(1) for e in range(len(ELEMENTS))], 1)


def original_unit_absolute_error(scale: np.ndarray):
  """``sample_metrics`` for standardised labels: |error| × the task's scale.

  Examples:
    >>> metric = original_unit_absolute_error(np.array([2.0, 10.0]))
    >>> preds = jnp.zeros((2, 3, 1))  # (tasks, batch, 1)
    >>> metric(preds, jnp.ones((3, 2))).tolist()[0]
    [2.0, 10.0]
  """
  scale = jnp.asarray(scale, jnp.float32)
  return lambda predictions, labels: tasks_lib.absolute_error(predictions, labels) * scale


def check_tasks(names: Sequence[str]) -> tuple[str, ...]:
  """Task names in the order given; a one-line UserError for unknown or repeated ones."""
  names = tuple(names)
  unknown = [t for t in names if t not in TARGETS]
  if unknown or not names:
    raise UserError(f"unknown QM9 task(s) {unknown}; valid tasks: {', '.join(TARGETS)}")
  if len(set(names)) != len(names):
    raise UserError(f"QM9 tasks repeat: {list(names)}")
  return names


def min_subsample(batch_size: int) -> int:
  """The smallest subsample whose training split holds one batch."""
  n = batch_size
  while split_sizes(n)[0] < batch_size:
    n += 1
  return n


def qm9(subsample: int = 20_000, tasks: Sequence[str] = TARGETS, *, model: str = "descriptors",
        atom_reference: bool = True, split_seed: int = 0, hidden: Sequence[int] = (256, 256),
        mpnn_width: int = 64, learning_rate: float = 1e-3, batch_size: int = 256,
        train_steps: int = 3000, directory: str | None = None) -> tasks_lib.TaskSet:
  """The QM9 TaskSet (MSE on transformed targets, MAE in original units).

  Args:
    subsample: molecules used, split 80/10/10 (see :func:`split_rows`).
    tasks: a subset of :data:`TARGETS`, in this order.
    model: ``descriptors`` (MLP over :func:`descriptors`) or ``mpnn``
      (:class:`MessagePassingTrunk`).
    atom_reference: subtract the per-element linear baseline before
      standardising (see :class:`TargetTransform`).
    split_seed: the permutation behind the subsample and split (fixed by default,
      so runs with different training seeds share their test set).
    hidden: MLP trunk widths (``descriptors``).
    mpnn_width: feature width of the message-passing trunk (``mpnn``).
    learning_rate: Adam's peak learning rate, cosine-decayed to 0 over ``train_steps``.
    batch_size, train_steps: as in :class:`tgroup.tasks.TaskSet`.
    directory: CSV folder (None: qm9pack's).

  Raises:
    UserError: qm9pack missing, unknown tasks or model, a subsample too small.
  """
  tasks = check_tasks(tasks)
  if model not in ("descriptors", "mpnn"):
    raise UserError(f"model must be descriptors or mpnn, got {model!r}")
  if subsample < min_subsample(batch_size):
    raise UserError(f"subsample must be at least {min_subsample(batch_size)} (a training split "
                    f"of one {batch_size}-molecule batch), got {subsample}")
  splits = split_rows(subsample, split_seed)
  mols = load_molecules(np.concatenate(splits), directory)
  columns = [TARGETS.index(t) for t in tasks]
  ends = np.cumsum([len(s) for s in splits])
  part = lambda a, k: a[(0 if k == 0 else ends[k - 1]):ends[k]]
  targets, counts = mols.targets[:, columns], element_counts(mols.species)
  transform = TargetTransform.fit(part(targets, 0), part(counts, 0), atom_reference)
  labels = transform.apply(targets, counts).astype(np.float32)
  if model == "descriptors":
    inputs = descriptors(mols.species, mols.coords)
    # Descriptor values are counts, eigenvalues and sums of unit-height Gaussians:
    # a scale below 0.1 (a tenth of one pair at a bin centre) only marks a rare bin.
    features = Standardiser.fit(part(inputs, 0).astype(np.float64), min_scale=0.1)
    inputs = features.apply(inputs).astype(np.float32)
    trunk = models.MLPTrunk(tuple(hidden))
  else:
    inputs = atom_inputs(mols.species, mols.coords)
    trunk = MessagePassingTrunk(width=mpnn_width)
  dataset = lambda k: data_lib.ArrayDataset(part(inputs, k), part(labels, k))
  schedule = optax.cosine_decay_schedule(learning_rate, train_steps)
  return tasks_lib.TaskSet(
      name="qm9",
      tasks=tasks,
      model=models.MultiTaskModel(trunk, models.DenseHead(1), num_tasks=len(tasks)),
      sample_losses=tasks_lib.squared_error,
      sample_metrics=original_unit_absolute_error(transform.scale),
      train=dataset(0),
      val=dataset(1),
      test=dataset(2),
      optimizer=optax.adam(schedule),
      batch_size=batch_size,
      train_steps=train_steps,
      metric_name="mae",
      description=(f"QM9, {subsample} molecules (split seed {split_seed}: "
                   f"{len(splits[0])}/{len(splits[1])}/{len(splits[2])}), {model} model, "
                   f"atom reference {'on' if atom_reference else 'off'}; "
                   "MAE in " + ", ".join(f"{t} {UNITS[t]}" for t in tasks)),
  )
