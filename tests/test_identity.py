"""Run identities are derived from the TaskSet and the settings, never written by hand.

For every benchmark launcher, each of its flags is changed in turn and the
identity of its gains and networks (what decides whether saved results are
reused) is computed from the launcher's own ``build()``: a flag that changes
what is trained or measured must change it, and only the flags listed below
(with the reason) may leave it unchanged. A flag added to a launcher and
forgotten by the identity fails this test.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tgroup import identity
from tgroup.benchmarks.synthetic import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flags that may leave the identity unchanged, and why.
UNCHANGED = {
    "workdir": "where results go",
    "quiet": "output only",
    "compilation_cache": "where compiled programs are kept",
    "checkpoint_every": "how often collection is saved; the gains are bitwise the same",
    "eval_seeds": "every network is saved per seed",
    "random_draws": "random groups are drawn anew each run; their networks are keyed by group",
    "max_oracle_networks": "a limit checked before any training",
    "landscape_samples": "the landscape method saves nothing to reuse",
    "landscape_inits": "the landscape method saves nothing to reuse",
    "landscape_knn": "the landscape method saves nothing to reuse",
    "landscape_head_init": "the landscape method saves nothing to reuse",
    "landscape_warmup_steps": "the landscape method saves nothing to reuse",
    "calibrated_networks": "grouping: the networks calibrated trains are keyed by group",
    "calibrated_kappa": "grouping: the networks calibrated trains are keyed by group",
    # Grouping settings: gains and networks are the same; groups are solved anew and every
    # network is keyed by its group.
    "num_groups": "grouping", "max_groups": "grouping", "min_group_size": "grouping",
    "max_group_size": "grouping", "must_link": "grouping", "cannot_link": "grouping",
    "alone": "grouping", "budget": "grouping", "cost_model": "grouping",
    "max_network_cost": "grouping", "grouping_time_limit": "grouping",
    "allow_half_size": "grouping (half-size networks have "
    "an identity of their own)", "costs_file": "grouping", "budget_sweep": "grouping",
    # A distributed run: how its processes meet (--distributed itself means --mesh=auto).
    "coordinator_address": "where the processes meet", "num_processes": "the mesh is the "
    "identity's, not how its devices are spread over processes", "process_id": "which "
    "process this is", "initialization_timeout": "how long processes wait for each other",
    # CelebA: where the data are and how they are decoded.
    "data_dir": "where the data are read from",
    "prepare_from": "a separate mode that prepares the data and exits",
    "workers": "decoding threads", "cache": "whether decoded images stay in memory",
    # Routing: how many processes solve the reference instances.
    "reference_workers": "solver processes; the references are the same",
}

# A valid other value for flags whose type says too little.
OTHER_VALUE = {
    "methods": "principled,cosine,stl,mtl_all",
    "max_groups": "5",  # at least every launcher's default number of groups
    "budget_sweep": "4",
    "workdir": "/tmp/elsewhere",
    "compilation_cache": "",
    "costs_file": "/tmp/costs.json",
    "mesh": "auto",
    "coordinator_address": "10.0.0.1:1234",
    "data_dir": "/tmp/other_data",
    "prepare_from": "/tmp/release",
    ("launch.digits", "tasks"): "gt3,gt4,even",
    ("launch.qm9", "tasks"): "mu,alpha,U0",
    ("launch.celeba", "tasks"): "Male,Smiling",
    ("launch.cop", "tasks"): "TSP20,CVRP20,OP20",
    ("launch.cop", "starts"): "4",  # at most the smallest task's 20 nodes
}
LINKS = {"launch.synthetic": ("c0_t0", "c0_t1"), "launch.digits": ("gt3", "gt4"),
         "launch.qm9": ("mu", "alpha"), "launch.celeba": ("Male", "Smiling"),
         "launch.ett": ("HUFL", "MUFL"), "launch.cop": ("TSP20", "TSP50")}

# Runs in a fresh process per launcher (absl flags are process-wide): parses every
# variant, builds the TaskSet and settings with the launcher's own build(), prints
# the identities. QM9, CelebA and routing factories are replaced by their definitions
# alone, so no data are loaded and no reference is solved: only what the flags put into
# the identity is under test.
_PROBE = textwrap.dedent("""
    import importlib, json, sys, types
    from absl import flags
    from tgroup import identity

    module, variants = sys.argv[1], json.loads(sys.argv[2])
    launcher = importlib.import_module(module)
    if module in ("launch.qm9", "launch.celeba", "launch.cop"):
      name = module.split(".")[1]
      bench = importlib.import_module("tgroup.benchmarks." + name
                                      + (".benchmark" if name == "cop" else ""))
      factory = getattr(bench, name)
      def stub(*args, **kwargs):
        definition = factory.definition(*args, **kwargs)
        return types.SimpleNamespace(definition=definition, train_steps=100,
                                     tasks=tuple(definition["arguments"]["tasks"]))
      setattr(bench, name, stub)
    out = {}
    for name, argv in variants.items():
      flags.FLAGS.unparse_flags()
      flags.FLAGS(["probe"] + argv)
      taskset, config = launcher.build()
      out[name] = [identity.digest(identity.gains_identity(
                       taskset, config.collect_config().settings(taskset))),
                   identity.digest(config.network_identity(taskset))]
    print(json.dumps(out))
""")


def _flags_of(module: str) -> dict:
  """The flags its --helpshort lists: name -> (parser, default, enum values)."""
  probe = textwrap.dedent(f"""
      import importlib, json
      from absl import flags
      launcher = importlib.import_module({module!r})
      out = {{}}
      for f in flags.FLAGS.get_key_flags_for_module(launcher):
        out[f.name] = [type(f.parser).__name__, f.default, getattr(f.parser, "enum_values", None)]
      print(json.dumps(out))
  """)
  proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout)


def _other_value(module: str, name: str, parser: str, default, enum_values) -> str:
  if (module, name) in OTHER_VALUE:
    return OTHER_VALUE[(module, name)]
  if name in OTHER_VALUE:
    return OTHER_VALUE[name]
  if name in ("must_link", "cannot_link"):
    return ":".join(LINKS[module])
  if name == "alone":
    return LINKS[module][0]
  if parser == "BooleanParser":
    return str(not default).lower()
  if parser == "EnumParser":
    return next(v for v in enum_values if v != default)
  if parser == "IntegerParser":
    return str(default + 1 if default is not None else 2)
  if parser == "FloatParser":
    return str(default * 2 if default else 1000.0)
  raise AssertionError(f"{module}: no other value known for --{name} ({parser}); add one to "
                       "OTHER_VALUE")


LAUNCHERS = ["launch.synthetic", "launch.digits", "launch.qm9", "launch.celeba", "launch.ett",
             "launch.cop"]
_SPECIAL = {"help", "helpshort", "helpfull", "helpxml", "flagfile", "undefok", "only_check_args",
            "?"}


@pytest.mark.parametrize("module", LAUNCHERS)
def test_every_flag_that_changes_results_changes_the_identity(module, tmp_path, monkeypatch):
  base = ["--workdir=/tmp/base"]
  if module == "launch.celeba":
    base.append("--data_dir=/tmp/no_data")  # the stub factory never reads it
  if module == "launch.ett":  # writes its generated CSV into the workdir; --data must exist
    from tgroup.benchmarks import ett  # pylint: disable=g-import-not-at-top
    # The hourly variant: a quarter of the 15-minute file's rows to generate per variant.
    base = [f"--workdir={tmp_path / 'base'}", "--variant=h"]
    monkeypatch.setitem(OTHER_VALUE, ("launch.ett", "variant"), "m")
    monkeypatch.setitem(OTHER_VALUE, ("launch.ett", "window_stride"), "3")  # h's default: 2
    monkeypatch.setitem(OTHER_VALUE, ("launch.ett", "workdir"), str(tmp_path / "elsewhere"))
    monkeypatch.setitem(OTHER_VALUE, ("launch.ett", "data"),
                        ett.generate_csv(str(tmp_path / "other.csv"), "h", seed=1))
  known = {k: v for k, v in _flags_of(module).items() if k not in _SPECIAL}
  assert {"num_groups", "methods", "seed", "max_steps", "quiet"} <= set(known)
  variants = {"base": base}
  for name, (parser, default, enum_values) in known.items():
    variants[name] = base + [f"--{name}={_other_value(module, name, parser, default, enum_values)}"]
  proc = subprocess.run([sys.executable, "-c", _PROBE, module, json.dumps(variants)], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  ids = json.loads(proc.stdout)
  for name in known:
    changed = ids[name] != ids["base"]
    if name in UNCHANGED:
      assert not changed, f"{module} --{name} changed the identity ({UNCHANGED[name]})"
    else:
      assert changed, (f"{module} {variants[name][-1]} left the identity of gains and "
                       "networks unchanged: pass it to the TaskSet factory or the settings, or "
                       "list it in UNCHANGED with the reason")


def test_a_definition_records_every_argument_defaults_included():
  ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
  arguments = ts.definition["arguments"]
  assert arguments["num_train"] == 64 and arguments["rho"] == 0.5 and arguments["seed"] == 0
  assert synthetic.definition(2, 2, num_train=64, num_val=8, num_test=8, rho=0.5) == ts.definition
  assert synthetic.definition(2, 2, num_train=64, num_val=8, num_test=8, rho=0.6) != ts.definition


def test_a_modified_copy_has_no_definition_until_given_one():
  import dataclasses  # pylint: disable=g-import-not-at-top
  ts = synthetic(2, 2, num_train=64, num_val=8, num_test=8)
  copy = dataclasses.replace(ts, batch_size=8)
  assert copy.definition is None
  assert identity.network_identity(copy, 10, 4) is None
  mine = copy.with_definition({"batch_size": 8})
  assert identity.network_identity(mine, 10, 4)["taskset"] == {"batch_size": 8}
