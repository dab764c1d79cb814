"""A run, from its settings to its run directory: ``resolve_run`` (the settings), ``Run`` (what is built
and written), ``execute`` (down once: build, fit, evaluate, write). The steps live in their own modules:
init_from.py (the module and where its weights start), fitting.py (Lightning's Trainer), evaluate.py;
their names are importable from here as before."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch

from . import config as config_mod
from . import joint, machine, runs
from .cache import prepare
from .checkpoints import continued_threads
from .data import SuiteDataModule
from .errors import SuiteError
from .evaluate import (evaluate_best, evaluate_joint_best, evaluate_module, print_joint_results,  # noqa: F401
                       print_results)
from .fitting import (RUN_DIR_ENV, MovingAverage, cleaned_up_on_failure, fit, launch_rank, make_trainer,  # noqa: F401
                      quiet_lightning, say, shared_run_dir)
from .init_from import adopt_source_backbone, apply_init, build  # noqa: F401  (suite.train.build etc., as before)
from .task import Pretrained


def resumed(run_dir: Path, module, cfg: dict) -> tuple[Path, dict | None]:
    """A run to continue: its checkpoints/last.ckpt and its --init-from counts; ``module`` takes ``cfg``."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SuiteError(f"{run_dir}: no checkpoints/last.ckpt to resume from")
    module.cfg = cfg
    module.freeze_backbone(cfg["init"].get("freeze") or "none")
    done = runs.read_metrics(run_dir, missing_ok=True)
    return ckpt, done.get("init") if done else None


@dataclass
class Run:
    """One run as it goes down, once: its settings (``cfg``, resolved), its tasks (one, or the tasks
    of a joint run sharing the backbone, core/joint.py), the run it continues (``resume``); then
    what ``build`` makes (tokenizers, module, data, run directory, the --init-from counts), what
    ``fit`` trains, and what ``write`` puts in the run directory. A single-task run and a joint run
    differ only in what is built and in the shape of metrics.json, here and nowhere else.

    ``data_cache``: a dict shared by many runs in one process (the transfer matrix); single-task
    runs of the same task, data settings and seed reuse one tokenizer and one set of datasets."""

    cfg: dict
    tasks: dict
    registry: object
    resume: Path | None = None
    data_cache: dict | None = None
    progress: bool = True
    run_dir: Path | None = None
    tokenizer: object = None  # a joint run: joint.Tokenizers, every task's by name
    module: object = None
    dm: object = None
    init_counts: dict | None = None
    ckpt: Path | None = None
    cache_key: str | None = None
    joint: bool = field(init=False)  # several tasks on one backbone: from the config

    def __post_init__(self):
        self.joint = joint.is_joint(self.cfg)

    @classmethod
    def of(cls, cfg: dict, registry, **kwargs) -> "Run":
        """The run of a resolved config: its task, or a joint run's tasks."""
        names = cfg["joint"]["tasks"] if joint.is_joint(cfg) else [cfg["task"]]
        return cls(cfg, {n: registry.task(n) for n in names}, registry, **kwargs)

    @property
    def task(self):
        return next(iter(self.tasks.values()))

    # -- build: tokenizers, module, weights to start from, data --------------------------------
    def prepare(self) -> None:
        """Every task's downloads and caches, once, before anything reads them."""
        for name, task in self.tasks.items():
            prepare(task, joint.task_config(self.cfg, name) if self.joint else self.cfg)

    def load(self, weights: bool = True, config: bool = False) -> None:
        """Tokenizers and module from ``run_dir`` (with its weights); ``config``: its saved config too."""
        loaded = (runs.load_joint if self.joint else runs.load_run)(self.run_dir, self.registry, weights=weights)
        self.tokenizer, self.module = loaded[2:]
        if config:
            self.cfg = loaded[1]

    def build(self) -> None:
        cfg, registry = self.cfg, self.registry
        self.prepare()
        if self.resume is not None:
            self.run_dir = Path(self.resume)
            self.load(weights=False)
            self.ckpt, self.init_counts = resumed(self.run_dir, self.module, cfg)
        elif self.joint:
            source = adopt_source_backbone(cfg, registry)
            self.tokenizer = joint.Tokenizers({n: t.build_tokenizer(joint.task_config(cfg, n)) for n, t in self.tasks.items()})
            self.module = joint.JointModule(self.tasks, self.tokenizer, cfg)
            self.init_counts = apply_init(self.module, cfg, registry, source)
        else:
            task, source = self.task, adopt_source_backbone(cfg, registry)
            # A task may adopt the source's vocabulary, and with it the source's embeddings.
            tokenizer = task.tokenizer_from_source(source[4], cfg) if source else None
            member = None if source else runs.member_source(cfg["init"].get("from"), task)
            if member:  # a joint run that trained this task: its tokenizer, adapter and head too
                tokenizer = member[0]
                source = (*runs.resolve_init(str(cfg["init"]["from"]), registry), Pretrained({}, member[1]))
            own_parts = tokenizer is not None
            if self.data_cache is not None and not own_parts:
                self.cache_key = json.dumps([task.name, cfg["data"], cfg["seed"]], sort_keys=True, default=str)
            cached = self.data_cache.get(self.cache_key) if self.cache_key else None
            self.tokenizer, self.module = build(task, cfg, cached[0] if cached else tokenizer)
            self.init_counts = apply_init(self.module, cfg, registry, source, own_parts=own_parts)
        if self.run_dir is None:
            self.run_dir = shared_run_dir(cfg)

    def data(self):
        if self.joint:
            return joint.JointDataModule(self.tasks, self.tokenizer, self.cfg)
        cached = self.data_cache.get(self.cache_key) if self.cache_key else None
        dm = SuiteDataModule(self.task, self.tokenizer, self.cfg, datasets=cached[1] if cached else None)
        if self.cache_key and not cached:
            dm.setup()
            self.data_cache[self.cache_key] = (self.tokenizer, dm.datasets)
        return dm

    def describe(self) -> str:
        t = self.cfg["trainer"]
        budget = f"{t['max_steps']} steps" if int(t.get("max_steps", -1)) >= 0 else f"{t.get('max_epochs')} epochs"
        what = (f"joint run of {', '.join(self.tasks)} (mix {self.cfg['joint']['mix']})" if self.joint else f"task {self.task.name}")
        return (f"{what}: {sum(p.numel() for p in self.module.parameters()):,} parameters, "
                f"backbone {runs.describe_backbone(self.cfg['backbone'])}, {budget}")

    def make_trainer(self) -> pl.Trainer:
        if self.joint:
            return make_trainer(joint.trainer_settings(self.cfg), self.run_dir, progress=self.progress,
                                objectives={n: m.objective for n, m in self.module.members.items()})
        return make_trainer(self.cfg, self.run_dir, progress=self.progress, objective=self.module.objective,
                            extra_callbacks=self.task.callbacks(self.cfg))

    # -- write: weights, artefacts, metrics.json ------------------------------------------------
    def save_weights(self) -> None:
        (runs.save_joint_weights if self.joint else runs.save_weights)(self.module, self.run_dir)
        for split, extra in self.module.artifacts.items():
            for name, value in extra.items():
                (self.run_dir / f"{split}_{name}.json").parent.mkdir(exist_ok=True)  # a joint run: <task>/
                runs.write_json(self.run_dir / f"{split}_{name}.json", value)

    def best(self, trainer: pl.Trainer, results: dict) -> dict | None:
        evaluate = evaluate_joint_best if self.joint else evaluate_best
        return evaluate(self.module, self.dm, self.cfg, trainer, self.progress, results)

    def metrics(self, trainer: pl.Trainer, results: dict, train_time: float, best) -> dict:
        m = {"task": self.cfg["task"], "step": trainer.global_step, "train_seconds": round(train_time, 1)}
        if self.joint:
            per_task = {}
            for (n, member), weight in zip(self.module.members.items(), self.dm.weights):
                per_task[n] = {"primary": member.objective.primary, "higher_is_better": member.objective.higher_is_better,
                               "steps": self.module.task_steps[n], "mix": round(weight / sum(self.dm.weights), 6),
                               "splits": {joint.split_name(s)[1]: v for s, v in results.items() if joint.split_name(s)[0] == n}}
            m["tasks"] = per_task
        else:
            m.update(primary=self.module.objective.primary, higher_is_better=self.module.objective.higher_is_better)
        return {**m, "splits": results, "history": self.module.history, "init": self.init_counts, "best": best,
                "world_size": trainer.world_size}

    def print_results(self, results: dict) -> None:
        if self.joint:
            print_joint_results(results, {n: m.objective.primary for n, m in self.module.members.items()})
        else:
            print_results(results, self.module.objective.primary)


def execute(run: Run) -> Path:
    """A run, down once: machine settings and seed, build, write its files, fit with Lightning's
    Trainer, evaluate (the last weights, then the best), write weights and metrics.json; returns
    the run directory. Every process of a multi-device run executes it; rank 0 alone writes files."""
    quiet_lightning()
    settings = machine.configure(continued_threads(run.cfg, run.resume))
    pl.seed_everything(int(run.cfg["seed"]), workers=True, verbose=False)
    run.build()
    with cleaned_up_on_failure(run.run_dir, fresh=run.resume is None):
        if launch_rank() == 0:
            runs.save_run_files(run.run_dir, run.cfg, run.tokenizer)
        say(f"run directory: {run.run_dir}")
        say(run.describe())
        say(f"precision {run.cfg['trainer'].get('precision', '32-true')}, {settings}")
        backend = run.cfg["run"].get("compile")
        if backend:  # true: inductor; or a torch.compile backend's name
            run.module.backbone.compile(backend="inductor" if backend is True else str(backend))  # in place: same state-dict keys
            say(f"torch.compile: the backbone, backend {'inductor' if backend is True else backend}")
        run.dm = run.data()
        trainer = run.make_trainer()
        train_time = fit(trainer, run.module, run.dm, run.run_dir, run.ckpt)
        results = evaluate_module(run.module, run.dm, run.cfg, run.progress, trainer=trainer)
        if trainer.global_rank == 0:
            run.save_weights()
        best = run.best(trainer, results)
        if trainer.global_rank != 0:
            return run.run_dir
        runs.write_json(run.run_dir / "metrics.json", run.metrics(trainer, results, train_time, best))
    run.print_results(results)
    print(f"run directory: {run.run_dir}")
    return run.run_dir


def train(task, cfg: dict, registry, *, resume: Path | None = None, progress: bool = True,
          data_cache: dict | None = None) -> Path:
    """Train one task's run and write its run directory (``execute`` of its ``Run``)."""
    return execute(Run(cfg, {task.name: task}, registry, resume=resume, data_cache=data_cache, progress=progress))


def train_joint(tasks: dict, cfg: dict, registry, *, resume: Path | None = None, progress: bool = True) -> Path:
    """Train a joint run and write its run directory (``execute`` of its ``Run``)."""
    return execute(Run(cfg, dict(tasks), registry, resume=resume, progress=progress))


def evaluate_run(run_dir: Path, registry, progress: bool = True) -> dict:
    """A finished run (or an export of one) on "val" and every test split, printed: its ``Run``
    loaded, not trained."""
    quiet_lightning()
    run = Run.of(runs.read_config(run_dir), registry, progress=progress, run_dir=Path(run_dir))
    run.load(weights=True, config=True)
    machine.configure(run.cfg)
    run.prepare()
    results = evaluate_module(run.module, run.data(), run.cfg, progress)
    run.print_results(results)
    return results


def predict(run_dir: Path, text: str, options: dict, registry, task: str | None = None) -> str:
    """``task``: which task of a joint run answers."""
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry, task=task)
    module.eval()
    with torch.no_grad():
        return task.predict(module, text, options)


def resolve_for_train(task, registry, *, config_file=None, overrides=None, args=()) -> dict:
    return config_mod.resolve(task, config_file=config_file, overrides=overrides, presets=registry.all_presets(), args=args)


def resolve_run(names: list[str], registry, *, config_file=None, overrides: dict | None = None, args=(), mix=None,
                saved: dict | None = None, resume=None) -> dict:
    """A run's settings resolved into one config: the task's (``names`` of one), or a joint run's
    (several; core/joint.py); ``saved``: the config.yaml of the run ``resume`` continues, with
    ``overrides`` and ``args`` over it."""
    overrides = overrides or {}
    if saved is not None:
        kind = f"a joint run of {','.join(saved['joint']['tasks'])}" if joint.is_joint(saved) else f"a run of task {saved['task']!r}"
        if names and names != (saved["joint"]["tasks"] if joint.is_joint(saved) else [saved["task"]]):
            raise SuiteError(f"--resume {resume} is {kind}, not {','.join(names)}")
        if config_file:
            raise SuiteError("--config applies to a new run; a resumed run keeps its config.yaml")
        names = saved["joint"]["tasks"] if joint.is_joint(saved) else [saved["task"]]
    if not names:
        raise SuiteError("give --task NAME (see `suite tasks`) or --resume RUN_DIR")
    if len(names) > 1:
        return joint.resolve(names, registry, config_file=config_file, overrides=overrides, args=args, mix=mix, saved=saved)
    if mix is not None:
        raise SuiteError("--mix weighs the tasks of a joint run: give several, --task A,B,C")
    task = registry.task(names[0])
    if saved is None:
        return resolve_for_train(task, registry, config_file=config_file, overrides=overrides, args=args)
    cfg = config_mod.parse(task, config_mod.merge(saved, config_mod.nest(overrides)), args,
                           origin=f"{resume}/config.yaml", unknown="warn")
    cfg["task"] = task.name
    return cfg


