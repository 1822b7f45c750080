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
  (:func:`~tgroup.benchmarks.qm9.descriptors.descriptors`), standardised on the
  training split, into an MLP trunk.
- ``mpnn``: a compact continuous-filter message-passing network over atoms and
  interatomic distances (:class:`MessagePassingTrunk`), padded to 29 atoms with
  masks; meant for accelerators.

This package holds the :func:`qm9` factory; the parts it assembles live in
:mod:`~tgroup.benchmarks.qm9.data` (molecules, splits, target transforms),
:mod:`~tgroup.benchmarks.qm9.descriptors` and :mod:`~tgroup.benchmarks.qm9.models`
(the message-passing trunk and its inputs).
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
import optax

from tgroup import data as data_lib
from tgroup import identity
from tgroup import models as models_lib
from tgroup import tasks as tasks_lib
from tgroup.benchmarks.qm9.data import NUM_MOLECULES
from tgroup.benchmarks.qm9.data import TARGETS
from tgroup.benchmarks.qm9.data import UNITS
from tgroup.benchmarks.qm9.data import Standardiser
from tgroup.benchmarks.qm9.data import TargetTransform
from tgroup.benchmarks.qm9.data import check_tasks
from tgroup.benchmarks.qm9.data import element_counts
from tgroup.benchmarks.qm9.data import load_molecules
from tgroup.benchmarks.qm9.data import min_subsample
from tgroup.benchmarks.qm9.data import require_data_dir
from tgroup.benchmarks.qm9.data import split_rows
from tgroup.benchmarks.qm9 import descriptors
from tgroup.benchmarks.qm9.models import MessagePassingTrunk
from tgroup.benchmarks.qm9.models import atom_inputs
from tgroup.errors import UserError

# The factory and what launch.qm9 checks its flags with; the rest is imported
# from the submodule that holds it.
__all__ = ["NUM_MOLECULES", "TARGETS", "check_tasks", "min_subsample", "qm9", "require_data_dir"]


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


# Where the CSV files are read from cannot change a result.
@identity.records_definition(ignore=("directory",))
def qm9(subsample: int = 20_000, tasks: Sequence[str] = TARGETS, *, model: str = "descriptors",
        atom_reference: bool = True, split_seed: int = 0, hidden: Sequence[int] = (256, 256),
        mpnn_width: int = 64, learning_rate: float = 1e-3, batch_size: int = 256,
        train_steps: int = 3000, directory: str | None = None) -> tasks_lib.TaskSet:
  """The QM9 TaskSet (MSE on transformed targets, MAE in original units).

  Args:
    subsample: molecules used, split 80/10/10 (see :func:`split_rows`).
    tasks: a subset of :data:`TARGETS`, in this order.
    model: ``descriptors`` (MLP over
      :func:`~tgroup.benchmarks.qm9.descriptors.descriptors`) or ``mpnn``
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
    inputs = descriptors.descriptors(mols.species, mols.coords)
    # Descriptor values are counts, eigenvalues and sums of unit-height Gaussians:
    # a scale below 0.1 (a tenth of one pair at a bin centre) only marks a rare bin.
    features = Standardiser.fit(part(inputs, 0).astype(np.float64), min_scale=0.1)
    inputs = features.apply(inputs).astype(np.float32)
    trunk = models_lib.MLPTrunk(tuple(hidden))
  else:
    inputs = atom_inputs(mols.species, mols.coords)
    trunk = MessagePassingTrunk(width=mpnn_width)
  dataset = lambda k: data_lib.ArrayDataset(part(inputs, k), part(labels, k))
  schedule = optax.cosine_decay_schedule(learning_rate, train_steps)
  return tasks_lib.TaskSet(
      name="qm9",
      tasks=tasks,
      model=models_lib.MultiTaskModel(trunk, models_lib.DenseHead(1), num_tasks=len(tasks)),
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
