"""Fixed-size QM9 descriptors in NumPy: the inputs of the ``descriptors`` model.

Counts per element, Coulomb-matrix eigenvalues, smeared interatomic-distance
histograms and 1/r sums per element pair (see :func:`descriptors`): invariant
to atom order, rotation and translation, computed once per molecule.
"""
from __future__ import annotations

import numpy as np

from tgroup.benchmarks.qm9.data import ATOMIC_NUMBERS
from tgroup.benchmarks.qm9.data import ELEMENTS
from tgroup.benchmarks.qm9.data import MAX_ATOMS
from tgroup.benchmarks.qm9.data import element_counts

# Coordinates are in Å; the Coulomb matrix is in atomic units (bohr).
BOHR_PER_ANGSTROM = 1.8897261246

# Element pairs (a, b) with a <= b, in a fixed order: the blocks of the descriptor.
_PAIRS = tuple((a, b) for a in range(len(ELEMENTS)) for b in range(a, len(ELEMENTS)))
_PAIR_INDEX = np.zeros((len(ELEMENTS), len(ELEMENTS)), int)
for _k, (_a, _b) in enumerate(_PAIRS):
  _PAIR_INDEX[_a, _b] = _PAIR_INDEX[_b, _a] = _k
# Gaussian-smeared distance histogram: centres every 0.25 Å from 0.75 Å (shorter
# than any bond, H-H 0.74 Å) to 7.0 Å; beyond that the 1/r sums carry the range.
DISTANCE_CENTRES = np.linspace(0.75, 7.0, 26)
DISTANCE_WIDTH = 0.25


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
