"""Joint training: one backbone, several tasks at once (`suite train --task vision,audio,arithmetic`).

Each task keeps its own tokenizer, adapter, head, objective and data; the backbone is one. Every
training step is one batch of one task, drawn by the mixing schedule: the task of batch ``i`` of
joint epoch ``e`` is a draw keyed by (seed, e, i), the same on every rank and in a resumed run, and
each rank then takes its own batch of that task from the task's ``Stream``. Validation and test run
every task's splits; metrics are named ``<task>/<split>`` (logged as ``val/<task>/<metric>``).

The config of a joint run is the shared sections (``seed``, ``backbone``, ``optim``, ``trainer``,
``init``, ``run``: the first task's, with the command line's), ``joint`` (the tasks and the mix) and
``tasks``, each task's own sections (``data``, ``model``, ...). ``task_config`` puts one task's
config back together, a single-task config like any other. The run directory is a run directory
with weights/backbone.safetensors keyed as a single-task run's, and weights/<task>/adapter and
head; tokenizer.json holds every task's tokenizer by name. docs/joint.md describes the design.

This module is the config of a run's set of tasks and what names each task's splits in it
(``task_names``, ``task_config``, ``prefix``); the set is trained by core/module.py's ``SuiteModule``
on core/data.py's ``SuiteDataModule`` (the mix: ``JointLoader``), its run directory is read and
written by core/runs.py, and it goes down core/train.py's ``Run`` as every run does.
"""
from __future__ import annotations

import math

from . import config as config_mod
from .backbone import architecture_differences
from .errors import SuiteError

SHARED = ("seed", "backbone", "optim", "trainer", "init", "adapt", "run")  # one for all the tasks of a joint run
DEFAULT_MIX = "uniform"


# -- the config -----------------------------------------------------------------------------------
def is_joint(cfg: dict) -> bool:
    return isinstance(cfg.get("joint"), dict)


def task_names(cfg: dict) -> list[str]:
    """The tasks of a run's config: a joint run's, or the one task of any other run."""
    return list(cfg["joint"]["tasks"]) if is_joint(cfg) else [cfg["task"]]


def task_config(cfg: dict, name: str) -> dict:
    """Task ``name``'s config in a run's config: a joint run's shared sections and the task's own
    (a single-task config like any other); a single-task run's config is its task's."""
    if name not in task_names(cfg):
        raise SuiteError(f"task {name!r} is not one of the run's tasks ({', '.join(task_names(cfg))})")
    if not is_joint(cfg):
        return cfg
    return {**{k: cfg[k] for k in SHARED if k in cfg}, **cfg["tasks"][name], "task": name}


# -- names of a task's splits and metrics in a run of several ---------------------------------------
def prefix(names: list[str], name: str) -> str:
    """What names task ``name``'s splits, metrics and checkpoints in a run of ``names``: nothing in a
    run of one task (``val``, ``val/acc``, ``best.ckpt``), ``<task>/`` in a run of several
    (``vision/val``, ``val/vision/acc``, ``best-vision.ckpt``)."""
    return "" if len(names) == 1 else f"{name}/"


def split_of(names: list[str], key: str) -> tuple[str, str]:
    """``(task, split)`` of a split's name in a run of ``names`` (``prefix``): ``"vision/test"`` ->
    ``("vision", "test")``; in a run of one task, ``"test"`` -> ``(task, "test")``."""
    if len(names) == 1:
        return names[0], key
    task, _, split = key.partition("/")
    return task, split


def split_name(split: str) -> tuple[str, str]:
    """``"vision/test"`` -> ``("vision", "test")``: a split's name in a joint run (``split_of``)."""
    task, _, name = split.partition("/")
    return task, name


def parse_mix(text, names: list[str]):
    """``--mix``: ``uniform``; ``size`` or ``size:T`` (weights ~ training-set size ** (1/T)); or one
    weight per task, ``2,1,1``. Returns what the config holds: the string, or the list of weights."""
    if isinstance(text, (list, tuple)):
        weights = list(text)
    else:
        text = str(text).strip()
        kind, _, temperature = text.partition(":")
        if text == "uniform" or (kind == "size" and not temperature):
            return text
        if kind == "size":
            try:
                if float(temperature) > 0:
                    return f"size:{float(temperature):g}"
            except ValueError:
                pass
            raise SuiteError(f"--mix {text}: the temperature after size: must be a positive number, such as size:2")
        weights = text.split(",")
    try:
        weights = [float(w) for w in weights]
    except ValueError:
        raise SuiteError(f"--mix {text}: give uniform, size, size:T or one weight per task such as "
                         f"{','.join('1' for _ in names)}") from None
    if len(weights) != len(names):
        raise SuiteError(f"--mix {text}: {len(weights)} weights for {len(names)} tasks ({', '.join(names)})")
    if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise SuiteError(f"--mix {text}: weights must be non-negative numbers with a positive sum")
    return weights


def route_args(tasks: list, args) -> dict[str, list[str]]:
    """The command line's ``--section.key VALUE`` for each task: ``--TASK.section.key`` to that task
    alone; a shared section's key to all; a task section's key (``--data.batch_size``) to every task
    that has it (to all when none has it, whose parser then names the unknown key)."""
    names = [t.name for t in tasks]
    has = {t.name: config_mod.flatten(config_mod.declared(t), t.name) for t in tasks}
    out: dict[str, list[str]] = {n: [] for n in names}
    for key, value in config_mod.split_args(list(args)):
        head, _, rest = key.partition(".")
        if head in out and "." in rest:
            if rest.partition(".")[0] in SHARED:
                raise SuiteError(f"--{key}: {rest.partition('.')[0]} is shared by the tasks of a joint run; set --{rest}")
            out[head].append(f"--{rest}={value}")
            continue
        takers = names if head in SHARED else [n for n in names if key in has[n]] or names
        for n in takers:
            out[n].append(f"--{key}={value}")
    return out


def resolve(names: list[str], registry, *, config_file=None, overrides: dict | None = None, args=(),
            mix=None, saved: dict | None = None) -> dict:
    """The config of a joint run of ``names``: each task's config resolved as for a run of its own,
    then combined. ``saved``: a joint run directory's config (``--resume``)."""
    if len(set(names)) != len(names):
        raise SuiteError(f"--task {','.join(names)}: a task is named twice")
    tasks = {n: registry.task(n) for n in names}
    routed = route_args(list(tasks.values()), args)
    cfgs = {}
    for n, task in tasks.items():
        if saved is None:
            cfgs[n] = config_mod.resolve(task, config_file=config_file, overrides=overrides,
                                         presets=registry.all_presets(), args=routed[n])
        else:
            values = config_mod.merge(task_config(saved, n), config_mod.nest(overrides or {}))
            cfgs[n] = config_mod.parse(task, values, routed[n], origin="config.yaml", unknown="warn")
    if mix is None:
        mix = saved["joint"]["mix"] if saved else DEFAULT_MIX
    return combine(cfgs, mix)


def combine(cfgs: dict[str, dict], mix=DEFAULT_MIX) -> dict:
    """A joint run's config from its tasks' single-task configs (``{name: cfg}``, in order): the first
    one's shared sections, every task's own. Their backbones must be one."""
    names = list(cfgs)
    first = cfgs[names[0]]["backbone"]
    for n in names[1:]:
        other = cfgs[n]["backbone"]
        if other.get("preset") != first.get("preset"):
            raise SuiteError(f"--task {','.join(names)}: the tasks share one backbone, but {names[0]} uses preset "
                             f"{first.get('preset')!r} and {n} {other.get('preset')!r}; give one with --backbone.preset NAME")
        differ = architecture_differences(first, other)
        if differ:
            raise SuiteError(f"--task {','.join(names)}: the tasks share one backbone, but {names[0]}'s and {n}'s "
                             f"differ ({'; '.join(differ)}); set it with --backbone.KEY VALUE")
    cfg = {k: cfgs[names[0]][k] for k in SHARED}
    cfg["task"] = "+".join(names)
    cfg["joint"] = {"tasks": names, "mix": parse_mix(mix, names)}
    cfg["tasks"] = {n: {k: v for k, v in c.items() if k not in SHARED and k != "task"} for n, c in cfgs.items()}
    return cfg


# -- run directories ------------------------------------------------------------------------------
class Tokenizers(dict):
    """The tasks' tokenizers by name; ``state()`` is what tokenizer.json holds."""

    def state(self) -> dict:
        return {n: t.state() for n, t in self.items()}


def current(cfg: dict, tasks: dict) -> dict:
    """A saved config with each task's settings added since the run at their defaults."""
    if not is_joint(cfg):
        (task,) = tasks.values()
        return config_mod.merge(config_mod.declared(task), cfg)
    cfg = dict(cfg, tasks=dict(cfg["tasks"]))
    for n, task in tasks.items():
        full = config_mod.merge(config_mod.declared(task), task_config(cfg, n))
        cfg["tasks"][n] = {k: v for k, v in full.items() if k not in SHARED and k != "task"}
    return cfg


# -- training ----------------------------------------------------------------------
def trainer_settings(cfg: dict) -> dict:
    """The config the Trainer gets: in a joint run under DDP, a step trains one task, so the other
    tasks' adapters and heads have no gradient; DDP is told to expect unused parameters."""
    t = cfg["trainer"]
    if not is_joint(cfg):
        return cfg
    many = str(t.get("devices", 1)) not in ("1",) or int(t.get("num_nodes", 1) or 1) > 1
    if many and t.get("strategy", "auto") in ("auto", "ddp"):
        return {**cfg, "trainer": {**t, "strategy": "ddp_find_unused_parameters_true"}}
    return cfg
