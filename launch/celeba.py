r"""CelebA attributes (TAG's benchmark): collect gains → group → train groups → compare.

Needs the optional extra (``pip install -e '.[celeba]'``: tensorflow-datasets and
array-record; TensorFlow is never imported) and the data prepared once. Put the
five files of the CelebA release (Google Drive links on the CelebA homepage:
img_align_celeba.zip, list_attr_celeba.txt, list_eval_partition.txt,
list_landmarks_align_celeba.txt, identity_CelebA.txt) in one folder, then

  python -m launch.celeba --data_dir=~/tensorflow_datasets --prepare_from=FOLDER

builds tfds's ``celeb_a`` as array_record files (no TensorFlow; reads the 1.4 GB zip
into memory). With TensorFlow installed, ``tfds build celeb_a
--file_format=array_record --manual_dir=FOLDER`` should build the same files (not
tried here). Where the data are missing, every run prints that instruction in one
line and exits with status 2.

TAG's setting, the default (9 attributes, TAG's encoder at 64×64 with GroupNorm
for BatchNorm, SGD momentum 0.9, learning rate 5e-4 halved every 15 epochs, batch
256, 100 epochs = 63,500 steps for every network; TAG also stopped early on
validation loss, which this fixed budget does not):

  python -m launch.celeba --workdir=runs/celeba --data_dir=~/tensorflow_datasets

needs an accelerator: GPU time not measured. It prints the results table: total
test error (sum of the per-attribute error rates) per method, the principled and
TAG groupings (3 groups by default, fewer with fewer than 4 tasks; --num_groups)
against STL and MTL-all. A shorter run: add --epochs=10. A CPU smoke run:

  python -m launch.celeba --workdir=/tmp/celeba --max_examples=512 --batch_size=32 \
      --width=16 --max_steps=100

measured at 21 minutes (3 GB of memory) on a shared 2-core CPU with other jobs
running, on a celeb_a prepared from generated release files (the real images
cannot be downloaded where this was written): the collection run's 45 lookaheads per step and 15 convolutional
networks; --tasks with fewer attributes shortens it.

All 40 attributes: --tasks=all (the oracle is out of reach there: 2^40 − 1 networks).
"""
import math
import os

from absl import flags

from launch import cli
from launch import common
from tgroup import pipeline
from tgroup.benchmarks import celeba
from tgroup.errors import UserError
from tgroup.tasks import TaskSet

_DATA_DIR = flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "TensorFlow Datasets "
                                "directory holding celeb_a prepared as array_record files.")
_PREPARE_FROM = flags.DEFINE_string(
    "prepare_from", None, "Folder with the five CelebA release files (img_align_celeba.zip, "
    "list_attr_celeba.txt, list_eval_partition.txt, list_landmarks_align_celeba.txt, "
    "identity_CelebA.txt): build celeb_a in --data_dir from them and exit.")
_TASKS = flags.DEFINE_list("tasks", list(celeba.TAG_TASKS), "Comma list of CelebA attributes, "
                           "one task each (default: TAG's 9); 'all' for all 40.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Use only the first this many "
                                     "examples of each split (a random subsample: tfds stores "
                                     "them shuffled), for CPU runs; unset: all.")
_EPOCHS = flags.DEFINE_float("epochs", 100.0, "Training epochs of the collection run and of "
                             "every group network (TAG: 100); --max_steps caps them.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Training batch size (TAG: 256).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 5e-4, "SGD learning rate (momentum 0.9), "
                                    "halved every 15 epochs (TAG: 5e-4).")
_WIDTH = flags.DEFINE_integer("width", 64, "Channels of the encoder (TAG: 64).")
_BLOCKS = flags.DEFINE_integer("blocks", 1, "Residual blocks of the encoder (TAG: 1; 0: none).")
_NORM = flags.DEFINE_enum("norm", "group", list(celeba.NORMS), "Normalisation of the encoder: "
                          "GroupNorm, or none (TAG's BatchNorm needs mutable state).")
_WORKERS = flags.DEFINE_integer("workers", 8, "Threads decoding each batch of JPEGs.")
_CACHE = flags.DEFINE_bool("cache", True, "Keep each decoded 64x64 image in memory after its "
                           "first use (12 KB each, 2.4 GB for all of CelebA); --nocache decodes "
                           "every batch (about 1 ms per image).")
_NUM_GROUPS = 3
for _module in common.flag_modules():
  flags.adopt_module_key_flags(_module)


def main(argv):
  del argv
  data_dir = _expand(_DATA_DIR.value)
  if _PREPARE_FROM.value:
    sizes = celeba.prepare(_expand(_PREPARE_FROM.value), data_dir)
    if not cli.QUIET.value:
      print(f"prepared celeb_a in {data_dir}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return
  workdir = common.workdir()
  pipeline.run_pipeline(*build(), workdir)


def build() -> tuple[TaskSet, pipeline.PipelineConfig]:
  """The TaskSet and settings the flags describe, every flag checked."""
  tasks = celeba.ATTRIBUTES if _TASKS.value == ["all"] else celeba.check_tasks(_TASKS.value)
  common.check_at_least_one(_WORKERS)
  for name, value in (("epochs", _EPOCHS.value), ("learning_rate", _LEARNING_RATE.value)):
    if not 0 < value < math.inf:  # a NaN fails this too
      raise UserError(f"--{name} must be a finite number > 0, got {value}")
  common.seed()  # checked now, before the data are built
  data_dir = _expand(_DATA_DIR.value)
  taskset = celeba.celeba(tasks, data_dir=data_dir, max_examples=_MAX_EXAMPLES.value,
                          width=_WIDTH.value, blocks=_BLOCKS.value, norm=_NORM.value,
                          learning_rate=_LEARNING_RATE.value, batch_size=_BATCH_SIZE.value,
                          epochs=_EPOCHS.value, workers=_WORKERS.value, cache=_CACHE.value)
  # Fewer groups than tasks, so the default grouping is never STL itself.
  num_groups = max(1, min(_NUM_GROUPS, len(tasks) - 1))
  return taskset, common.pipeline_config(num_groups, taskset.train_steps)


def _expand(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path))


if __name__ == "__main__":
  cli.run(main)
