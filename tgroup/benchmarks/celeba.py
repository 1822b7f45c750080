"""CelebA face attributes (Fifty et al. 2021, TAG's benchmark): one binary task per attribute.

Data: TensorFlow Datasets' ``celeb_a`` (2.1.0) prepared as array_record files and
read with ``tfds.data_source``; TensorFlow is never imported (see
:mod:`tgroup.benchmarks.tfds_source`). Examples are decoded when a batch first
needs them and each 218×178 image is resized to 64×64 as TAG did: bilinear,
half-pixel centres, no antialiasing (TensorFlow's ``tf.image.resize`` default).
Deviation: the resized image is rounded to 8 bits (as a 64×64 PNG would store it;
at most 0.5/255 from TAG's float image), so the in-memory cache holds 12 KB per
image (2.4 GB for all of CelebA) and cached and freshly decoded batches are
identical. Batches carry float32 images in [0, 1], no further normalisation, and
the attributes as 0/1 int32 labels, one column per task.

Model: TAG's encoder, which its notebook calls ResNet-18 but is shallower: a 3×3
convolution, 3×3/2 max-pool, one residual block at the same width, 2×2 average
pool, flattened; one 2-way linear head per attribute. Width and the number of
residual blocks are arguments (TAG: 64 and 1). Deviation: GroupNorm (or no
normalisation) where TAG used BatchNorm, because tgroup's models carry no mutable
state; GroupNorm normalises each sample alone, so a sample's prediction does not
depend on the rest of its batch (TAG's lookahead ran BatchNorm on batch
statistics). Kernels are Glorot-uniform initialised, as in TAG.

Preparing the data needs the five files of the CelebA release (Google Drive links
on the CelebA homepage), in one folder: img_align_celeba.zip, list_attr_celeba.txt,
list_eval_partition.txt, list_landmarks_align_celeba.txt, identity_CelebA.txt.
:func:`prepare` builds the dataset from them with tfds's own ``celeb_a`` builder,
reading the zip with the standard library (tfds's archive reader, and so
``tfds build``, needs TensorFlow).
"""
from __future__ import annotations

import functools
import math
import os
import zipfile
from typing import Any, Sequence

import flax.linen as nn
import numpy as np
import optax

from tgroup import identity
from tgroup import models
from tgroup import tasks as tasks_lib
from tgroup.benchmarks import tfds_source
from tgroup.errors import UserError

# The 40 attributes, in tfds's (and the release's) order.
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")
# The 9 attributes of TAG's CelebA experiments.
TAG_TASKS = ("5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Goatee",
             "Mustache", "No_Beard", "Rosy_Cheeks", "Wearing_Hat")
# The CelebA release's files, named as in tfds's celeb_a checksums.
RELEASE_FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt",
                 "list_landmarks_align_celeba.txt", "identity_CelebA.txt")
IMAGE_SIZE = 64
NORMS = ("group", "none")


def check_tasks(names: Sequence[str]) -> tuple[str, ...]:
  """``names`` as a tuple, or a one-line error listing the valid attribute names.

  Examples:
    >>> check_tasks(["Male", "Young"])
    ('Male', 'Young')
  """
  names = tuple(n.strip() for n in names)
  unknown = [n for n in names if n not in ATTRIBUTES]
  if unknown:
    raise UserError(f"unknown CelebA attribute(s) {unknown}; valid: {', '.join(ATTRIBUTES)}")
  if not names:
    raise UserError("no CelebA attributes given")
  if len(set(names)) != len(names):
    raise UserError(f"CelebA attributes repeat: {list(names)}")
  return names


def how_to_prepare(data_dir: str) -> str:
  """The one-line instruction printed where the data are missing."""
  return (f"put the CelebA release's {', '.join(RELEASE_FILES)} in one folder DIR, then run "
          f"python -m launch.celeba --data_dir={data_dir} --prepare_from=DIR")


def _linear_taps(size_in: int, size_out: int):
  """Source rows and weights of bilinear resampling with half-pixel centres."""
  position = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
  position = np.clip(position, 0, size_in - 1)
  low = np.floor(position).astype(np.int64)
  high = np.minimum(low + 1, size_in - 1)
  return low, high, (position - low).astype(np.float32)


def resize_images(images: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
  """Bilinear resize of uint8 ``(n, h, w, c)`` images to float32 ``(n, size, size, c)`` in [0, 1].

  Half-pixel centres and no antialiasing, like ``tf.image.resize`` (TAG) and
  ``jax.image.resize(..., "linear", antialias=False)``. Each output pixel reads
  two rows and two columns, so this gathers them instead of multiplying by dense
  interpolation matrices.

  Examples:
    >>> out = resize_images(np.full((2, 218, 178, 3), 255, np.uint8))
    >>> out.shape, out.dtype, float(out.min()), float(out.max())
    ((2, 64, 64, 3), dtype('float32'), 1.0, 1.0)
  """
  low, high, w = _linear_taps(images.shape[1], size)
  w = w[:, None, None]
  rows = images[:, low].astype(np.float32) * (1 - w) + images[:, high].astype(np.float32) * w
  low, high, w = _linear_taps(images.shape[2], size)
  w = w[:, None]
  out = rows[:, :, low] * (1 - w) + rows[:, :, high] * w
  return out * np.float32(1 / 255)


def examples_to_arrays(examples: Sequence[dict[str, Any]], tasks: Sequence[str],
                       image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """Decoded tfds examples to ``(images (n, s, s, 3) uint8, labels (n, m) int32)``.

  Images are resized (:func:`resize_images`) and rounded to 8 bits;
  :func:`to_unit_float` makes the model's inputs of them.
  """
  images = resize_images(np.stack([e["image"] for e in examples]), image_size)
  images = np.round(images * 255).astype(np.uint8)
  labels = np.array([[bool(e["attributes"][t]) for t in tasks] for e in examples], np.int32)
  return images, labels


def to_unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 images to float32 in [0, 1]."""
  return images.astype(np.float32) * np.float32(1 / 255)


def _norm(kind: str, width: int) -> nn.Module:
  # 32 groups is GroupNorm's usual choice; gcd keeps it valid for narrow widths.
  return nn.GroupNorm(num_groups=math.gcd(width, 32)) if kind == "group" else (lambda x: x)


def _conv(width: int, kernel: int, norm: str) -> nn.Conv:
  # A normalisation layer's bias makes the convolution's redundant.
  return nn.Conv(width, (kernel, kernel), padding="SAME", use_bias=norm == "none",
                 kernel_init=nn.initializers.glorot_uniform())


class ResidualBlock(nn.Module):
  """conv-norm-relu-conv-norm plus identity, then relu (TAG's block at stride 1)."""
  width: int
  norm: str = "group"

  @nn.compact
  def __call__(self, x):
    y = nn.relu(_norm(self.norm, self.width)(_conv(self.width, 3, self.norm)(x)))
    y = _norm(self.norm, self.width)(_conv(self.width, 3, self.norm)(y))
    return nn.relu(x + y)


class CelebATrunk(nn.Module):
  """TAG's encoder with ``width`` channels and ``blocks`` residual blocks (TAG: 64, 1).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> trunk = CelebATrunk(width=8)
    >>> params = jax.eval_shape(trunk.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    >>> jax.eval_shape(trunk.apply, params, jnp.zeros((2, 64, 64, 3))).shape  # 15 × 15 × 8
    (2, 1800)
  """
  width: int = 64
  blocks: int = 1
  norm: str = "group"

  @nn.compact
  def __call__(self, x):
    x = nn.relu(_norm(self.norm, self.width)(_conv(self.width, 3, self.norm)(x)))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    for _ in range(self.blocks):
      x = ResidualBlock(self.width, self.norm)(x)
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return x.reshape(x.shape[0], -1)


def learning_rate_schedule(learning_rate: float, steps_per_epoch: int,
                           halve_every_epochs: int = 15) -> optax.Schedule:
  """TAG's schedule: ``learning_rate`` halved every ``halve_every_epochs`` epochs.

  (TAG's notebook halves before epochs 14, 29, 44, ...; this halves at 15, 30, ....)

  Examples:
    >>> schedule = learning_rate_schedule(5e-4, steps_per_epoch=10)
    >>> [round(float(schedule(s)), 9) for s in (0, 149, 150, 300)]
    [0.0005, 0.0005, 0.00025, 0.000125]
  """
  return optax.exponential_decay(learning_rate, transition_steps=halve_every_epochs *
                                 steps_per_epoch, decay_rate=0.5, staircase=True)


# Where the data are read from and how they are decoded cannot change a result.
@identity.records_definition(ignore=("data_dir", "workers", "cache"))
def celeba(tasks: Sequence[str] = TAG_TASKS, *, data_dir: str, max_examples: int | None = None,
           width: int = 64, blocks: int = 1, norm: str = "group", learning_rate: float = 5e-4,
           momentum: float = 0.9, halve_every_epochs: int = 15, batch_size: int = 256,
           epochs: float = 100.0, image_size: int = IMAGE_SIZE, workers: int = 8,
           cache: bool = True) -> tasks_lib.TaskSet:
  """The CelebA TaskSet: 2-way cross-entropy per attribute, error rate as the metric.

  Args:
    tasks: attribute names (default: TAG's 9).
    data_dir: tfds data directory holding the prepared ``celeb_a``.
    max_examples: use only the first this many examples of each split (tfds stores
      them shuffled), for CPU runs; None: all (162,770 / 19,867 / 19,962).
    width, blocks, norm: the trunk (see :class:`CelebATrunk`); ``blocks=0`` leaves
      only the first convolution.
    learning_rate, momentum, halve_every_epochs: SGD with momentum on TAG's schedule.
    batch_size: training batch size.
    epochs: training length of every network; one epoch is
      ``len(train) // batch_size`` steps (full batches only).
    image_size: side of the resized images (TAG: 64).
    workers: threads decoding each batch.
    cache: keep every decoded, resized image in memory after its first use (12 KB
      each at 64×64): the collection run and every group network read each split
      many times, and decoding costs ≈ 1 ms per image.

  Raises:
    UserError: unknown attributes, bad sizes, or data not prepared in ``data_dir``.
  """
  tasks = check_tasks(tasks)
  for name, value, low in (("width", width, 1), ("blocks", blocks, 0),
                           ("batch_size", batch_size, 1), ("image_size", image_size, 1),
                           ("halve_every_epochs", halve_every_epochs, 1)):
    if value < low:
      raise UserError(f"{name} must be >= {low}, got {value}")
  if max_examples is not None and max_examples < 1:
    raise UserError(f"max_examples must be >= 1, got {max_examples}")
  if norm not in NORMS:
    raise UserError(f"norm must be one of {list(NORMS)}, got {norm!r}")
  if not (learning_rate > 0 and epochs > 0):
    raise UserError(f"learning_rate and epochs must be > 0, got {learning_rate}, {epochs}")
  to_arrays = functools.partial(examples_to_arrays, tasks=tasks, image_size=image_size)
  splits = {}
  for split in ("train", "validation", "test"):
    source = tfds_source.open_split("celeb_a", split, data_dir, how_to_prepare(data_dir))
    splits[split] = tfds_source.RecordDataset(source, to_arrays, to_unit_float, max_examples,
                                              workers, cache)
  if batch_size > len(splits["train"]):
    raise UserError(f"batch_size={batch_size} exceeds the {len(splits['train'])} training "
                    "examples")
  steps_per_epoch = len(splits["train"]) // batch_size
  schedule = learning_rate_schedule(learning_rate, steps_per_epoch, halve_every_epochs)
  return tasks_lib.TaskSet(
      name="celeba",
      tasks=tasks,
      model=models.MultiTaskModel(CelebATrunk(width, blocks, norm), models.DenseHead(2),
                                  num_tasks=len(tasks)),
      sample_losses=tasks_lib.softmax_cross_entropy,
      sample_metrics=tasks_lib.classification_error,
      train=splits["train"],
      val=splits["validation"],
      test=splits["test"],
      optimizer=optax.sgd(schedule, momentum=momentum),
      batch_size=batch_size,
      train_steps=max(1, round(epochs * steps_per_epoch)),
      metric_name="error",
      metric_is_error=True,
      description=(f"CelebA, {len(tasks)} attributes, {len(splits['train'])} training images "
                   f"at {image_size}x{image_size}, trunk width {width}, {blocks} block(s), "
                   f"norm {norm}"),
  )


def prepare(release_dir: str, data_dir: str) -> dict[str, int]:
  """Builds tfds's ``celeb_a`` as array_record files in ``data_dir``, without TensorFlow.

  Uses tfds's own builder (same features, same example keys, so the same records
  in the same order as ``tfds build celeb_a --file_format=array_record`` should
  give), except that the five release files are read from ``release_dir`` with
  the standard library. Takes the whole zip into memory (~1.4 GB), as tfds does.

  Returns:
    The number of examples of each split.
  """
  missing = [f for f in RELEASE_FILES if not os.path.isfile(os.path.join(release_dir, f))]
  if missing:
    raise UserError(f"{release_dir} lacks the CelebA release file(s) {', '.join(missing)}")
  builder = _local_files_builder()(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(download_config=_download_config(release_dir))
  return {name: info.num_examples for name, info in builder.info.splits.items()}


def _download_config(release_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (optional extra)
  return tfds.download.DownloadConfig(manual_dir=release_dir)


@functools.cache
def _local_files_builder():
  """tfds's celeb_a builder, reading the release files from the manual directory."""
  # pylint: disable=g-import-not-at-top  (optional extra)
  from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder as upstream

  class CelebAFromReleaseFiles(upstream.Builder, skip_registration=True):
    """Same name, version and features as tfds's ``celeb_a``; local files only."""
    name = "celeb_a"
    MANUAL_DOWNLOAD_INSTRUCTIONS = how_to_prepare("DATA_DIR")

    @classmethod
    def get_metadata(cls):
      # Citation and description live beside tfds's builder, not beside this one.
      return upstream.Builder.get_metadata()

    def _split_generators(self, dl_manager):
      files = {key: os.path.join(dl_manager.manual_dir, name) for key, name in (
          ("list_eval_partition", "list_eval_partition.txt"),
          ("list_attr_celeba", "list_attr_celeba.txt"),
          ("landmarks_celeba", "list_landmarks_align_celeba.txt"),
          ("identity_celeba", "identity_CelebA.txt"))}
      with zipfile.ZipFile(os.path.join(dl_manager.manual_dir, RELEASE_FILES[0])) as archive:
        images = {os.path.basename(n): archive.read(n) for n in archive.namelist()
                  if n.endswith(".jpg")}
      return {split: self._generate_examples(file_id, files, images)
              for file_id, split in enumerate(("train", "validation", "test"))}

  return CelebAFromReleaseFiles
