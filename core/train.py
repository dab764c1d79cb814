"""Training and evaluation of one run: builds the module, the data and the Trainer, writes the run directory."""
from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EMAWeightAveraging, ModelCheckpoint
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from . import config as config_mod
from . import joint, machine, runs
from .cache import prepare
from .backbone import BackboneConfig
from .checkpoints import AtomicCheckpointIO, ResumeCheckpoint, best_checkpoint, continued_threads
from .data import SuiteDataModule
from .loggers import make_loggers
from .errors import SuiteError
from .module import NonFiniteLoss, SuiteModule
from .progress import progress_bar
from .task import Pretrained


RUN_DIR_ENV = "SUITE_RUN_DIR"  # the run directory, passed by rank 0 to the processes Lightning launches


def quiet_lightning() -> None:
    """Keep Lightning's console output to what a user acts on."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LitLogger.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")  # Lightning 2.6 on torch 2.11
    warnings.filterwarnings("ignore", message=r".*Your `IterableDataset` has `__len__` defined.*")  # suite.Stream: exact
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")  # steps, not epochs, are logged


def launch_rank() -> int:
    """This process's global rank as the launcher set it (Lightning, torchrun, SLURM), before the Trainer starts."""
    return rank_zero_only.rank


def say(*args) -> None:
    """print, on rank 0 only."""
    if launch_rank() == 0:
        print(*args)


class MovingAverage(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging from step ``update_starting_at_step`` on. Before its first update
    the average is still the untrained model, so until then validation and the end of a run use the
    weights as they are (a run shorter than the start keeps its own weights).

    The average is part of the resumable state (Lightning's ``averaging_state``). The run's final
    checkpoint keeps the trained weights beside the average it ends with, so a finished run
    continued with more steps goes on from its own weights, not from the average."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._trained: dict | None = None  # the weights as trained, once on_train_end put the average in their place

    def on_validation_epoch_start(self, trainer, pl_module):
        if self._latest_update_step > 0:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._latest_update_step > 0:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self._latest_update_step > 0:
            self._trained = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self._latest_update_step == 0:  # no average yet: its first update copies the weights
            return
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._trained is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._trained

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def make_trainer(cfg: dict, run_dir: Path | None, *, progress: bool = True, extra_callbacks=(), objective=None,
                 objectives: dict | None = None) -> pl.Trainer:
    """The Trainer of a run: ``cfg['trainer']`` as Lightning takes it, the CSV log, checkpoints/last.ckpt
    for resuming and, given the run's ``objective``, checkpoints/best.ckpt at its best validation
    (a joint run's ``objectives``, by task: checkpoints/best-<task>.ckpt at each task's best)."""
    t = dict(cfg["trainer"])
    accepted = inspect.signature(pl.Trainer).parameters
    for key in t:
        if key not in accepted:
            hint = difflib.get_close_matches(key, list(accepted), n=1)
            raise SuiteError(f"unknown setting --trainer.{key}" + (f"; did you mean --trainer.{hint[0]}?" if hint else ""))
    callbacks = list(extra_callbacks)
    ema = bool(cfg.get("optim", {}).get("ema_decay"))
    if ema:
        callbacks.append(MovingAverage(decay=float(cfg["optim"]["ema_decay"]), update_starting_at_step=int(cfg["optim"].get("ema_from") or 0)))
    if progress:  # TQDM redrawn every 10 steps: Lightning's default Rich bar cost 5-8% of a tiny model's step (bench/)
        callbacks.append(progress_bar(refresh_rate=10))  # plain lines when stdout is not a terminal (progress.py)
    if run_dir is not None:
        if objective is not None:
            callbacks.append(best_checkpoint(run_dir / "checkpoints", objective.primary, objective.higher_is_better,
                                             weights_only=not ema))
        for task, o in (objectives or {}).items():
            callbacks.append(best_checkpoint(run_dir / "checkpoints", f"{task}/{o.primary}", o.higher_is_better,
                                             weights_only=not ema, name=f"best-{task}"))
        callbacks.append(ResumeCheckpoint(run_dir / "checkpoints", int(cfg["run"]["checkpoint_every"])))
    return pl.Trainer(
        **t,
        default_root_dir=str(run_dir) if run_dir else None,
        logger=(make_loggers(cfg, run_dir) or False) if run_dir else False,  # --logger: logs/ of the run
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=run_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )


def build(task, cfg: dict, tokenizer=None):
    tokenizer = tokenizer if tokenizer is not None else task.build_tokenizer(cfg)
    return tokenizer, SuiteModule(task, tokenizer, cfg)


def apply_init(module: SuiteModule, cfg: dict, registry, origin_state=None, own_parts: bool = False) -> dict | None:
    """--init-from and --freeze. Returns the loaded/skipped/initialised counts, or None.

    ``own_parts``: the task adopted the weight source's vocabulary, so the source's ``adapter.``
    and ``head.`` tensors are loaded as well (``origin_state`` is then adopt_source_backbone's)."""
    counts = None
    spec = cfg["init"].get("from")
    if spec:
        kind, backbone, state, origin = (origin_state or runs.resolve_init(str(spec), registry))[:4]
        if not runs.same_architecture(backbone, cfg["backbone"]):
            differ = runs.architecture_differences(backbone, cfg["backbone"])
            hint = (f"pass --backbone.preset {backbone.get('preset')}" if backbone.get("preset") != cfg["backbone"].get("preset")
                    else "pass " + " ".join(f"--backbone.{d.split()[0]} {d.split()[1]}" for d in differ))
            raise SuiteError(
                f"--init-from {spec}: its backbone is {runs.describe_backbone(backbone)} but this run uses "
                f"{runs.describe_backbone(cfg['backbone'])} ({'; '.join(differ)}, source != this run); {hint}"
            )
        counts = runs.init_backbone(module, state, origin)
        if own_parts:
            own = runs.init_own_parts(module, origin_state[4].state_dict, origin)
            counts["loaded"] += own
            counts["initialised"] -= own
        say(f"init-from {origin}: loaded {counts['loaded']} tensors, skipped {counts['skipped']}, "
            f"newly initialised {counts['initialised']} "
            + ("(adapter and head are new)" if not own_parts else "(the task's adapter and head come from the joint run)"
               if kind == "run" else "(the task uses the source's vocabulary and embeddings)"))
    mode = cfg["init"].get("freeze") or "none"
    trainable = module.freeze_backbone(mode)
    if mode != "none":
        n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
        say(f"freeze {mode}: {trainable} backbone tensors train; {n_train:,} trainable parameters in all")
    return counts


def adopt_source_backbone(cfg: dict, registry) -> tuple | None:
    """A weight source (not a run directory) brings its own architecture: use it for this run.
    Returns resolve_init's tuple with the source's suite.Pretrained appended, or None."""
    spec = cfg["init"].get("from")
    if not spec or Path(str(spec)).is_dir():
        return None
    pretrained = runs.load_source(str(spec), registry)
    resolved = (*runs.resolve_init(str(spec), registry, pretrained), pretrained)
    backbone = BackboneConfig.from_dict(resolved[1]).to_dict()
    backbone["dropout"] = cfg["backbone"].get("dropout", 0.0)
    cfg["backbone"] = {"preset": resolved[1].get("preset", str(spec).partition(":")[0]), **backbone}
    return resolved


def evaluate_module(module: SuiteModule, dm: SuiteDataModule, cfg: dict, progress: bool = True,
                    trainer: pl.Trainer | None = None, splits: list[str] | None = None) -> dict:
    """Metrics on "val" and every "test*" split (or ``splits``), with the module as it is. ``trainer``:
    the one that trained it (under DDP every rank evaluates its part); by default a new one-device Trainer."""
    module.test_splits = dm.eval_splits = list(splits or dm.all_splits)
    if trainer is None:
        trainer = make_trainer({**cfg, "trainer": {**cfg["trainer"], "devices": 1, "strategy": "auto", "num_nodes": 1}},
                               None, progress=progress)
    trainer.test(module, datamodule=dm, verbose=False)
    return {s: module.results[s] for s in module.test_splits}


def evaluate_best(module: SuiteModule, dm: SuiteDataModule, cfg: dict, trainer: pl.Trainer, progress: bool,
                  last: dict) -> dict | None:
    """{"step", "splits"} of checkpoints/best.ckpt, the best validation check: evaluated when it is
    not the last step (the module is left at its weights), else ``last``, the run's own metrics."""
    best = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    if best is None or not best.best_model_path or not Path(best.best_model_path).is_file():
        return None
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=False)  # this run's own file
    if state["global_step"] == trainer.global_step:
        return {"step": trainer.global_step, "splits": last}
    module.load_state_dict(state["state_dict"])
    return {"step": state["global_step"], "splits": evaluate_module(module, dm, cfg, progress, trainer=trainer)}


def shared_run_dir(cfg: dict) -> Path:
    """The run directory: made by rank 0 and handed to every other process of the run.

    Processes that Lightning launches inherit it from rank 0's environment; under SLURM or
    torchrun, where every process starts on its own, the job's id names it."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    job = os.environ.get("SLURM_JOB_ID") if int(os.environ.get("SLURM_NTASKS", "1")) > 1 else None
    job = job or os.environ.get("TORCHELASTIC_RUN_ID")
    if job and not cfg["run"].get("name"):
        cfg = {**cfg, "run": {**cfg["run"], "name": f"job-{job}"}}
    if launch_rank() != 0:
        if not cfg["run"].get("name"):
            raise SuiteError(f"rank {launch_rank()}: no run directory from rank 0; set --run.name for this launcher")
        return Path(cfg["run"]["root"]) / cfg["task"] / cfg["run"]["name"]
    return runs.new_run_dir(cfg)


@contextmanager
def cleaned_up_on_failure(run_dir: Path, fresh: bool):
    """A run that fails before its first checkpoint leaves no directory behind (a fresh one is
    removed); one that fails later keeps its checkpoints and gets error.txt with the reason."""
    try:
        yield
    except BaseException as e:
        if launch_rank() == 0 and run_dir.is_dir():
            if fresh and not (run_dir / "checkpoints" / "last.ckpt").is_file():
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                runs.write_text(run_dir / "error.txt", f"{type(e).__name__}: {e}\n")
        raise


def fit(trainer: pl.Trainer, module, dm, run_dir: Path, ckpt: Path | None) -> float:
    """``trainer.fit`` (from ``ckpt`` when resuming), a failure said in one line, and
    checkpoints/last.ckpt of the final step. Returns the training seconds."""
    start = time.time()
    os.environ[RUN_DIR_ENV] = str(run_dir)  # for the processes a multi-device Trainer launches
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
    except NonFiniteLoss as e:
        step = next(c.saved_step for c in trainer.callbacks if isinstance(c, ResumeCheckpoint))
        kept = (f"checkpoints/last.ckpt of step {step} is kept" if step > 0 else
                "checkpoints/last.ckpt is kept" if (run_dir / "checkpoints" / "last.ckpt").is_file() else
                "no checkpoint was written before it")
        raise SuiteError(f"{e}; {kept} in {run_dir}") from None
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if trainer.interrupted:
        raise SuiteError(f"training interrupted at step {trainer.global_step}; continue with: suite train --resume {run_dir}")
    train_time = time.time() - start
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)  # resumable from the final step
    return train_time


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
    joint: bool = False  # set from the config: several tasks on one backbone

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


def print_results(results: dict, primary: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({k for m in results.values() for k in m}, key=lambda k: (k != primary, k))
    table = Table("split", *names)
    for split, m in results.items():
        table.add_row(split, *(f"{m[k]:.4f}" if k in m else "" for k in names))
    Console().print(table)


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


def evaluate_joint_best(module, dm, cfg: dict, trainer: pl.Trainer, progress: bool, last: dict) -> dict | None:
    """{task: {"step", "splits"}} of each task's checkpoints/best-<task>.ckpt, its splits evaluated
    with those weights (``last``, the run's own metrics, where the best is the last step); the module
    is left at the weights of the last one loaded."""
    best = {}
    for c in trainer.callbacks:
        if not isinstance(c, ModelCheckpoint) or not c.best_model_path or not Path(c.best_model_path).is_file():
            continue
        name = Path(c.best_model_path).stem.removeprefix("best-")
        own = [s for s in dm.all_splits if joint.split_name(s)[0] == name]
        state = torch.load(c.best_model_path, map_location="cpu", weights_only=False)  # this run's own file
        if state["global_step"] == trainer.global_step:
            splits = {s: last[s] for s in own}
        else:
            module.load_state_dict(state["state_dict"])
            splits = evaluate_module(module, dm, cfg, progress, trainer=trainer, splits=own)
        best[name] = {"step": state["global_step"], "splits": {joint.split_name(s)[1]: v for s, v in splits.items()}}
    return best or None


def print_joint_results(results: dict, primaries: dict[str, str]) -> None:
    """One table per task, its primary metric first."""
    for n, primary in primaries.items():
        print_results({s: v for s, v in results.items() if joint.split_name(s)[0] == n}, primary)
