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

This module is the joint run's config, data and LightningModule; its run directory is read and
written by core/runs.py, and it is trained by core/train.py (``train_joint``), as single runs are.
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn

from . import config as config_mod
from .backbone import Backbone, BackboneConfig, architecture_differences
from .data import SuiteDataModule
from .errors import SuiteError
from .module import SuiteModule, TrainedModule
from .streams import stream_key

SHARED = ("seed", "backbone", "optim", "trainer", "init", "run")  # one for all the tasks of a joint run
DEFAULT_MIX = "uniform"


# -- the config -----------------------------------------------------------------------------------
def is_joint(cfg: dict) -> bool:
    return isinstance(cfg.get("joint"), dict)


def task_config(cfg: dict, name: str) -> dict:
    """Task ``name``'s config in a joint run's config: the shared sections and the task's own."""
    if name not in cfg["joint"]["tasks"]:
        raise SuiteError(f"task {name!r} is not one of the joint run's tasks ({', '.join(cfg['joint']['tasks'])})")
    return {**{k: cfg[k] for k in SHARED if k in cfg}, **cfg["tasks"][name], "task": name}


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


# -- the data -------------------------------------------------------------------------------------
def mix_weights(mix, loaders: dict) -> list[float]:
    """The sampling weight of each task's batches (normalised by the sampler)."""
    if mix == "uniform":
        return [1.0] * len(loaders)
    if isinstance(mix, list):
        return [float(w) for w in mix]
    temperature = float(str(mix).partition(":")[2] or 1)
    sizes = []
    for name, loader in loaders.items():
        try:
            sizes.append(len(loader.dataset))
        except TypeError:
            raise SuiteError(f"--mix {mix}: task {name}'s training data has no size; give weights with --mix") from None
    return [s ** (1 / temperature) for s in sizes]


class JointLoader:
    """``(task name, batch)`` pairs: batch ``i`` of joint epoch ``e`` is the next batch of the task
    drawn with ``weights`` by a generator keyed by (seed, e, i). A joint epoch is as many batches as
    the tasks' epochs together; a task whose epoch ends starts its next one.

    Lightning saves ``state_dict()`` into the checkpoint, as it does a ``StreamLoader``'s: the joint
    epoch, the batches of it served, and each task loader's own state, so a resumed run draws the
    same tasks and the same batches."""

    def __init__(self, loaders: dict, weights: list[float], seed: int):
        self.loaders, self.names = loaders, list(loaders)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.seed = int(seed)
        self.epoch, self.served = 0, 0

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders.values())

    def task_of(self, epoch: int, batch: int) -> str:
        g = torch.Generator().manual_seed(stream_key(self.seed, "mix", epoch, batch))
        return self.names[int(torch.multinomial(self.weights, 1, generator=g))]

    def __iter__(self):
        if self.served >= len(self):  # resumed at the very end of an epoch
            self.epoch, self.served = self.epoch + 1, 0
        running = {}
        while self.served < len(self):
            name = self.task_of(self.epoch, self.served)
            batch = next(running[name], None) if name in running else None
            if batch is None:  # the task's first batch in this joint epoch, or its own epoch ended
                running[name] = iter(self.loaders[name])
                batch = next(running[name])
            self.served += 1
            yield name, batch
        self.epoch, self.served = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "served": self.served,
                "tasks": {n: l.state_dict() for n, l in self.loaders.items() if hasattr(l, "state_dict")}}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
        for name, loader_state in state.get("tasks", {}).items():
            self.loaders[name].load_state_dict(loader_state)


class JointDataModule(pl.LightningDataModule):
    """Every task's SuiteDataModule; splits are named ``<task>/<split>``."""

    def __init__(self, tasks: dict, tokenizers: dict, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.members = {n: SuiteDataModule(t, tokenizers[n], task_config(cfg, n)) for n, t in tasks.items()}
        self.eval_splits: list[str] | None = None  # what test_dataloader serves; default: the test splits
        self.weights: list[float] = []  # the mix, once train_dataloader has made it

    def prepare_data(self):
        for dm in self.members.values():
            dm.prepare_data()

    def setup(self, stage: str | None = None):
        for dm in self.members.values():
            dm.trainer = self.trainer  # each reads its rank from it
            dm.setup(stage)

    @property
    def test_splits(self) -> list[str]:
        return [f"{n}/{s}" for n, dm in self.members.items() for s in dm.test_splits]

    @property
    def all_splits(self) -> list[str]:
        return [f"{n}/{s}" for n, dm in self.members.items() for s in dm.all_splits]

    def train_dataloader(self):
        self.setup()
        loaders = {n: dm.train_dataloader() for n, dm in self.members.items()}
        self.weights = mix_weights(self.cfg["joint"]["mix"], loaders)
        return JointLoader(loaders, self.weights, int(self.cfg["seed"]))

    def val_dataloader(self):
        self.setup()
        return [dm._eval_loader("val") for dm in self.members.values()]

    def test_dataloader(self):
        self.setup()
        return [self.members[n]._eval_loader(s) for n, s in map(split_name, self.eval_splits or self.test_splits)]


def split_name(split: str) -> tuple[str, str]:
    """``"vision/test"`` -> ``("vision", "test")``."""
    task, _, name = split.partition("/")
    return task, name


# -- the model ------------------------------------------------------------------------------------
class JointModule(TrainedModule):
    """One backbone (``backbone.``, keyed as in a single-task run) and, per task, a SuiteModule that
    uses it (``members.<task>.adapter.`` and ``.head.``): a step is one task's objective on its batch."""

    def __init__(self, tasks: dict, tokenizers: dict, cfg: dict):
        super().__init__(cfg)
        self.backbone = Backbone(BackboneConfig.from_dict(cfg["backbone"]))
        self.members = nn.ModuleDict({n: SuiteModule(t, tokenizers[n], task_config(cfg, n), backbone=self.backbone)
                                      for n, t in tasks.items()})
        self.test_splits: list[str] = []
        self.task_steps = dict.fromkeys(tasks, 0)  # training batches of each task so far
        self.last_loss: dict[str, float] = {}

    def training_step(self, batch, batch_idx):
        name, batch = batch
        member = self.members[name]
        loss = member.objective.loss(member, batch)
        self.check_finite(loss, name)
        self.task_steps[name] += 1
        self.last_loss[name] = float(loss.detach())
        self.log("train/loss", loss, prog_bar=True, batch_size=1)
        # every task's latest loss at every logged step: one curve per task in the logs
        self.log_dict({f"train/{n}/loss": v for n, v in self.last_loss.items()}, batch_size=1)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        member = list(self.members.values())[dataloader_idx]
        member.objective.evaluate(member, batch, "val")

    def on_validation_epoch_end(self):
        for name in self.members:
            self._finish_split(name, "val")
        if not self.trainer.sanity_checking:
            self.history.append({"step": self.global_step, **{f"{n}/{k}": v for n in self.members
                                                              for k, v in self.results[f"{n}/val"].items()}})

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        name, split = split_name(self.test_splits[dataloader_idx])
        self.members[name].objective.evaluate(self.members[name], batch, split)

    def on_test_epoch_end(self):
        for split in self.test_splits:
            self._finish_split(*split_name(split))

    def _finish_split(self, name: str, split: str):
        objective = self.members[name].objective
        self.artifacts[f"{name}/{split}"] = objective.artifacts(split)
        values = objective.compute(split)
        self.results[f"{name}/{split}"] = values
        self.log_dict({f"{split}/{name}/{k}": v for k, v in values.items()}, add_dataloader_idx=False, sync_dist=True)

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["suite"]["task_steps"] = dict(self.task_steps)

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        self.task_steps.update(checkpoint.get("suite", {}).get("task_steps", {}))


# -- run directories ------------------------------------------------------------------------------
class Tokenizers(dict):
    """The tasks' tokenizers by name; ``state()`` is what tokenizer.json holds."""

    def state(self) -> dict:
        return {n: t.state() for n, t in self.items()}


def current(cfg: dict, tasks: dict) -> dict:
    """A saved joint config with each task's settings added since the run at their defaults."""
    cfg = dict(cfg, tasks=dict(cfg["tasks"]))
    for n, task in tasks.items():
        full = config_mod.merge(config_mod.declared(task), task_config(cfg, n))
        cfg["tasks"][n] = {k: v for k, v in full.items() if k not in SHARED and k != "task"}
    return cfg


# -- training and evaluation ----------------------------------------------------------------------
def trainer_settings(cfg: dict) -> dict:
    """The config the Trainer gets: under DDP, a step trains one task, so the other tasks' adapters
    and heads have no gradient; DDP is told to expect unused parameters."""
    t = cfg["trainer"]
    many = str(t.get("devices", 1)) not in ("1",) or int(t.get("num_nodes", 1) or 1) > 1
    if many and t.get("strategy", "auto") in ("auto", "ddp"):
        return {**cfg, "trainer": {**t, "strategy": "ddp_find_unused_parameters_true"}}
    return cfg
