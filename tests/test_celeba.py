"""The CelebA benchmark: data path, model, and the launcher end to end, without TensorFlow.

Two kinds of data, neither downloaded: ``tfds.testing.mock_data`` (random examples
from celeb_a's feature spec; it patches tfds in-process, so the launcher runs in a
child Python that enters the mock and then runs ``launch.celeba`` as ``__main__``),
and a tiny celeb_a really prepared by ``--prepare_from`` from fake release files
(array_record files, JPEG decoding: the path real data take).
"""
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from PIL import Image  # pylint: disable=g-import-not-at-top,wrong-import-position

from conftest import one_line_error  # pylint: disable=g-import-not-at-top,wrong-import-position
from expected_gains import off_diagonal  # pylint: disable=g-import-not-at-top,wrong-import-position
from tgroup.benchmarks import celeba  # pylint: disable=g-import-not-at-top,wrong-import-position
from tgroup.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small, quickly compiled model: the launcher's flags are what is under test here.
FAST = ["--batch_size=4", "--width=4", "--blocks=0", "--norm=none", "--max_steps=2",
        "--quiet", "--compilation_cache="]

# Runs launch.celeba as __main__ (argv from JSON), under mock_data when asked. The
# child sees a stand-in TensorFlow, as if it were installed: code that only looks
# for it finds it, and any import of it is recorded (then fails).
CHILD = r"""
import importlib.abc, importlib.util, json, runpy, sys
args, mock_examples = json.loads(sys.argv[1])
attempts = []
class StandInTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "tensorflow":
      return importlib.util.spec_from_loader(name, self)
    return None
  def create_module(self, spec):
    return None
  def exec_module(self, module):
    attempts.append(module.__name__)
    raise ImportError("this test forbids importing TensorFlow")
sys.meta_path.insert(0, StandInTensorFlow())
import tensorflow_datasets as tfds
sys.argv = ["launch.celeba", *args]
try:
  if mock_examples:
    with tfds.testing.mock_data(num_examples=mock_examples,
                                policy=tfds.testing.MockPolicy.USE_CODE):
      runpy.run_module("launch.celeba", run_name="__main__", alter_sys=True)
  else:
    runpy.run_module("launch.celeba", run_name="__main__", alter_sys=True)
finally:
  print("tensorflow imports:", json.dumps(attempts), "tensorflow" in sys.modules,
        file=sys.stderr)
"""


def launch(*args, mock_examples=0, timeout=600):
  return subprocess.run([sys.executable, "-c", CHILD, json.dumps([list(args), mock_examples])],
                        cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_no_tensorflow(proc):
  assert 'tensorflow imports: [] False' in proc.stderr, proc.stderr[-2000:]


def fake_release(folder, num_images=24, seed=0):
  """The five CelebA release files for ``num_images`` random images; returns their attributes.

  Image i (``%06d.jpg`` of i + 1) has identity i, so a prepared record leads back
  to its row; partitions cycle train, validation, test.
  """
  rng = np.random.default_rng(seed)
  names = [f"{i + 1:06d}.jpg" for i in range(num_images)]
  attributes = rng.choice([-1, 1], (num_images, len(celeba.ATTRIBUTES)))
  with zipfile.ZipFile(os.path.join(folder, "img_align_celeba.zip"), "w") as archive:
    for name in names:
      buffer = io.BytesIO()
      Image.fromarray(rng.integers(0, 256, (218, 178, 3), np.uint8)).save(buffer, "JPEG")
      archive.writestr("img_align_celeba/" + name, buffer.getvalue())
  landmarks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x " \
              "leftmouth_y rightmouth_x rightmouth_y"
  files = {
      "list_eval_partition.txt": [f"{n} {i % 3}" for i, n in enumerate(names)],
      "list_attr_celeba.txt": [str(num_images), " ".join(celeba.ATTRIBUTES)] + [
          n + " " + " ".join(f"{a:2d}" for a in row) for n, row in zip(names, attributes)],
      "list_landmarks_align_celeba.txt": [str(num_images), landmarks] + [
          n + " 1 2 3 4 5 6 7 8 9 10" for n in names],
      "identity_CelebA.txt": [f"{n} {i}" for i, n in enumerate(names)],
  }
  for file_name, lines in files.items():
    with open(os.path.join(folder, file_name), "w") as f:
      f.write("\n".join(lines) + "\n")
  return attributes > 0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """A tiny celeb_a prepared with --prepare_from: (data_dir, release folder, attributes)."""
  release = tmp_path_factory.mktemp("release")
  attributes = fake_release(str(release))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  proc = launch(f"--data_dir={data_dir}", f"--prepare_from={release}", timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "prepared celeb_a in" in proc.stdout and "train 8, validation 8, test 8" in proc.stdout
  assert_no_tensorflow(proc)
  return data_dir, str(release), attributes


def release_image(release, index):
  with zipfile.ZipFile(os.path.join(release, "img_align_celeba.zip")) as archive:
    data = archive.read(f"img_align_celeba/{index + 1:06d}.jpg")
  return np.asarray(Image.open(io.BytesIO(data)))


def test_resize_equals_jax_linear_without_antialiasing():
  images = np.random.default_rng(0).integers(0, 256, (3, 218, 178, 3), np.uint8)
  ours = celeba.resize_images(images, 64)
  reference = jax.image.resize(images.astype(np.float32) / 255, (3, 64, 64, 3), "linear",
                               antialias=False)
  np.testing.assert_allclose(ours, np.asarray(reference), atol=2e-6)


def test_prepared_batches_are_resized_images_with_their_attributes(prepared):
  data_dir, release, attributes = prepared
  tasks = ("Male", "Black_Hair", "Young")
  ts = celeba.celeba(tasks, data_dir=data_dir, batch_size=4, width=4)
  assert ts.tasks == tasks and ts.metric_is_error and ts.metric_name == "error"
  assert (len(ts.train), len(ts.val), len(ts.test)) == (8, 8, 8)
  assert ts.train_steps == 100 * (8 // 4)  # 100 epochs of full batches
  columns = [celeba.ATTRIBUTES.index(t) for t in tasks]
  source = tfds.data_source("celeb_a", split="validation", data_dir=data_dir, download=False)
  seen = []
  for batch in ts.val.eval_batches(3):
    assert batch.inputs.shape == (3, 64, 64, 3) and batch.inputs.dtype == np.float32
    assert 0 <= batch.inputs.min() and batch.inputs.max() <= 1
    assert batch.labels.dtype == np.int32 and set(np.unique(batch.labels)) <= {0, 1}
    seen.append((batch.inputs, batch.labels, batch.weights))
  weights = np.concatenate([w for _, _, w in seen])
  assert weights.tolist() == [1] * 8 + [0]
  inputs = np.concatenate([x for x, _, _ in seen])[:8]
  labels = np.concatenate([y for _, y, _ in seen])[:8]
  for k in range(8):
    image_index = int(source[k]["identity"]["Identity_No"])
    assert image_index % 3 == 1  # the validation partition
    np.testing.assert_array_equal(labels[k], attributes[image_index, columns])
    expected = celeba.resize_images(release_image(release, image_index)[None])[0]
    np.testing.assert_allclose(inputs[k], expected, atol=0.5 / 255 + 1e-6)  # 8-bit rounding


def test_train_batches_shuffle_by_seed_and_cover_each_epoch(prepared):
  data_dir, _, _ = prepared
  ts = celeba.celeba(("Male",), data_dir=data_dir, batch_size=4, width=4)
  fingerprint = lambda b: [round(float(x), 6) for x in b.inputs.mean(axis=(1, 2, 3))]
  draw = lambda seed: [fingerprint(b) for b, _ in zip(ts.train.train_batches(4, seed), range(4))]
  first = draw(0)
  assert first == draw(0) and first != draw(1)
  assert sorted(first[0] + first[1]) == sorted(first[2] + first[3])  # each epoch: every image


def test_cached_batches_equal_decoded_ones(prepared):
  data_dir, _, _ = prepared
  build = lambda cache: celeba.celeba(("Male", "Smiling"), data_dir=data_dir, batch_size=4,
                                      width=4, cache=cache)
  cached, fresh = build(True), build(False)
  draws = lambda ts: [b for b, _ in zip(ts.train.train_batches(4, seed=3), range(6))] + list(
      ts.test.eval_batches(5)) + list(ts.test.eval_batches(5))  # 3 epochs, test twice
  for a, b in zip(draws(cached), draws(fresh), strict=True):
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)
  assert cached.train._store["filled"].all() and not fresh.train._store


def test_mock_labels_and_images_match_the_mock_examples():
  tasks = ("Wearing_Hat", "5_o_Clock_Shadow")
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    ts = celeba.celeba(tasks, data_dir="/nonexistent", batch_size=2, width=4)
    source = tfds.data_source("celeb_a", split="train", download=False)
    inputs, labels = ts.train.load([5, 0, 3])
    examples = [source[i] for i in (5, 0, 3)]
  assert len(ts.train) == 6 and inputs.shape == (3, 64, 64, 3)
  expected = [[int(e["attributes"][t]) for t in tasks] for e in examples]
  assert labels.tolist() == expected
  assert len({e["image"].tobytes() for e in examples}) == 3  # three different examples
  np.testing.assert_allclose(inputs, celeba.resize_images(np.stack([e["image"] for e in examples])),
                             atol=0.5 / 255 + 1e-6)


def test_launcher_under_mock_data_writes_the_contract(tmp_path):
  wd = str(tmp_path / "run")
  tasks = ["Black_Hair", "Blond_Hair", "No_Beard"]
  proc = launch(f"--workdir={wd}", f"--tasks={','.join(tasks)}", *FAST, mock_examples=12)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_no_tensorflow(proc)
  gains = json.load(open(os.path.join(wd, "gains.json")))
  # principled runs in its default, marginal form.
  assert gains["tasks"] == tasks and gains["measure"] == "principled_marginal"
  assert gains["counts"] == off_diagonal(3, 2)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["benchmark"] == "celeba" and report["tasks"] == tasks
  assert set(report["methods"]) == {"principled", "tag", "stl", "mtl_all"}
  for entry in report["methods"].values():
    per_task = entry["per_task"]
    assert set(per_task) == set(tasks)
    assert all(min(abs(v["test_metric"] - k / 12) for k in range(13)) < 1e-6
               for v in per_task.values())  # error rates over the 12 mock test examples
    assert entry["total_test_error"] == pytest.approx(sum(v["test_metric"]
                                                          for v in per_task.values()))
  assert len(json.load(open(os.path.join(wd, "groups.json")))["groups"]) == 2  # 3 tasks: 2


@pytest.mark.slow  # about 40 s on 2 cores: 40 networks' worth of compiling and a 40-task MIP
def test_launcher_groups_all_40_attributes_under_mock_data(tmp_path):
  """--tasks=all: 40 tasks, sampled collection on the pair-cover schedule, the MIP by column
  generation (far more than 2^16 candidate groups) and the landscape method."""
  wd = str(tmp_path / "run")
  proc = launch(f"--workdir={wd}", "--tasks=all", *FAST, "--methods=principled,landscape,mtl_all",
                "--sample_tasks=8", "--sample_bias=pairs", "--landscape_samples=8",
                "--grouping_time_limit=10",
                mock_examples=24)
  assert proc.returncode == 0, proc.stderr[-3000:]
  gains = json.load(open(os.path.join(wd, "gains.json")))
  assert gains["tasks"] == list(celeba.ATTRIBUTES)
  assert gains["settings"]["sample_tasks"] == 8 and gains["settings"]["pair_counts"]["max"] <= 2
  groups = json.load(open(os.path.join(wd, "groups.json")))
  assert sorted(t for g in groups["groups"] for t in g) == sorted(celeba.ATTRIBUTES)
  assert groups["candidates"] == "generated" and groups["bound"] >= groups["objective"]
  report = json.load(open(os.path.join(wd, "report.json")))
  assert set(report["methods"]) == {"principled", "landscape", "mtl_all"}
  assert all(len(e["per_task"]) == 40 for e in report["methods"].values())


def test_launcher_not_prepared_says_how_in_one_line(tmp_path):
  data_dir = tmp_path / "empty"
  proc = launch(f"--workdir={tmp_path / 'run'}", f"--data_dir={data_dir}", timeout=60)
  line = one_line_error(proc)
  assert f"--data_dir={data_dir} --prepare_from=DIR" in line
  assert "img_align_celeba.zip" in line and "identity_CelebA.txt" in line
  assert not data_dir.exists()


@pytest.mark.parametrize("flag,message", [
    ("--tasks=Male,Nope", "unknown CelebA attribute(s) ['Nope']; valid: 5_o_Clock_Shadow,"),
    ("--width=0", "width must be >= 1"),
    ("--max_examples=0", "max_examples must be >= 1"),
    ("--batch_size=64", "batch_size=64 exceeds the 8 training examples"),
])
def test_launcher_user_errors_exit_2_with_one_line(prepared, tmp_path, flag, message):
  data_dir, _, _ = prepared
  proc = launch(f"--workdir={tmp_path / 'run'}", f"--data_dir={data_dir}", "--quiet", flag)
  assert message in one_line_error(proc), proc.stderr[-3000:]


def test_prepare_names_missing_release_files(tmp_path):
  (tmp_path / "list_attr_celeba.txt").write_text("0\n")
  with pytest.raises(UserError, match="lacks the CelebA release file.*img_align_celeba.zip"):
    celeba.prepare(str(tmp_path), str(tmp_path / "tfds"))


def test_check_tasks_lists_all_40_valid_names():
  with pytest.raises(UserError) as e:
    celeba.check_tasks(["Male", "Beard"])
  assert "'Beard'" in str(e.value) and all(a in str(e.value) for a in celeba.ATTRIBUTES)
  assert len(celeba.ATTRIBUTES) == 40 and set(celeba.TAG_TASKS) <= set(celeba.ATTRIBUTES)


def test_helpshort_lists_every_flag():
  proc = subprocess.run([sys.executable, "-m", "launch.celeba", "--helpshort"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  for flag in ("workdir", "methods", "num_groups", "max_group_size", "seed", "max_steps",
               "quiet", "data_dir", "prepare_from", "tasks", "max_examples", "epochs",
               "batch_size", "learning_rate", "width", "blocks", "norm", "workers", "cache"):
    assert f"--{flag}" in proc.stdout or f"--[no]{flag}" in proc.stdout, flag


@pytest.mark.slow
@pytest.mark.parametrize("source", ["mock", "prepared"])
def test_launcher_default_model_and_tasks(prepared, tmp_path, source):
  """TAG's 9 attributes and the default encoder (narrower), on both kinds of data."""
  wd = str(tmp_path / "run")
  args = [f"--workdir={wd}", "--width=8", "--batch_size=4", "--max_steps=3", "--quiet",
          "--methods=principled,tag,cosine,stl,mtl_all,random"]
  if source == "prepared":
    proc = launch(*args, f"--data_dir={prepared[0]}")
  else:
    proc = launch(*args, mock_examples=16)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_no_tensorflow(proc)
  report = json.load(open(os.path.join(wd, "report.json")))
  assert report["tasks"] == list(celeba.TAG_TASKS)
  assert all(len(e["per_task"]) == 9 for e in report["methods"].values())
