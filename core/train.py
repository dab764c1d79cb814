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


def train(task, cfg: dict, registry, *, resume: Path | None = None, progress: bool = True,
          data_cache: dict | None = None) -> Path:
    """Train one run and write its run directory; returns the directory.

    The same function runs in every process of a multi-device run: all of them train and
    evaluate, rank 0 alone writes files. ``data_cache``: a dict shared by many runs in one process
    (the transfer matrix); runs of the same task, data settings and seed reuse one tokenizer and
    one set of datasets.
    """
    quiet_lightning()
    settings = machine.configure(continued_threads(cfg, resume))
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    prepare(task, cfg)  # downloads and caches, once, before anything reads them
    if resume is not None:
        run_dir = Path(resume)
        _, _, tokenizer, module = runs.load_run(run_dir, registry, weights=False)
        ckpt, init_counts = resumed(run_dir, module, cfg)
        cached = None
    else:
        source = adopt_source_backbone(cfg, registry)
        # A task may adopt the source's vocabulary, and with it the source's embeddings.
        tokenizer = task.tokenizer_from_source(source[4], cfg) if source else None
        member = None if source else runs.member_source(cfg["init"].get("from"), task)
        if member:  # a joint run that trained this task: its tokenizer, adapter and head too
            tokenizer = member[0]
            source = (*runs.resolve_init(str(cfg["init"]["from"]), registry), Pretrained({}, member[1]))
        own_parts = tokenizer is not None
        cache_key = json.dumps([task.name, cfg["data"], cfg["seed"]], sort_keys=True, default=str)
        cached = data_cache.get(cache_key) if data_cache is not None and not own_parts else None
        tokenizer, module = build(task, cfg, cached[0] if cached else tokenizer)
        init_counts = apply_init(module, cfg, registry, source, own_parts=own_parts)
        run_dir = shared_run_dir(cfg)
        ckpt = None
    with cleaned_up_on_failure(run_dir, fresh=resume is None):
        if launch_rank() == 0:
            runs.save_run_files(run_dir, cfg, tokenizer)
        say(f"run directory: {run_dir}")
        n_params = sum(p.numel() for p in module.parameters())
        t = cfg["trainer"]
        budget = f"{t['max_steps']} steps" if int(t.get("max_steps", -1)) >= 0 else f"{t.get('max_epochs')} epochs"
        say(f"task {task.name}: {n_params:,} parameters, backbone {runs.describe_backbone(cfg['backbone'])}, {budget}")
        say(f"precision {t.get('precision', '32-true')}, {settings}")
        backend = cfg["run"].get("compile")
        if backend:  # true: inductor; or a torch.compile backend's name
            module.backbone.compile(backend="inductor" if backend is True else str(backend))  # in place: same state-dict keys
            say(f"torch.compile: the backbone, backend {'inductor' if backend is True else backend}")

        dm = SuiteDataModule(task, tokenizer, cfg, datasets=cached[1] if cached else None)
        if data_cache is not None and resume is None and cache_key not in data_cache and not own_parts:
            dm.setup()
            data_cache[cache_key] = (tokenizer, dm.datasets)
        trainer = make_trainer(cfg, run_dir, progress=progress, objective=module.objective, extra_callbacks=task.callbacks(cfg))
        train_time = fit(trainer, module, dm, run_dir, ckpt)
        results = evaluate_module(module, dm, cfg, progress, trainer=trainer)
        if trainer.global_rank == 0:
            runs.save_weights(module, run_dir)
            for split, extra in module.artifacts.items():
                for name, value in extra.items():
                    runs.write_json(run_dir / f"{split}_{name}.json", value)
        best = evaluate_best(module, dm, cfg, trainer, progress, results)
        if trainer.global_rank != 0:
            return run_dir
        objective = module.objective
        metrics = {
            "task": task.name, "step": trainer.global_step, "train_seconds": round(train_time, 1),
            "primary": objective.primary, "higher_is_better": objective.higher_is_better,
            "splits": results, "history": module.history, "init": init_counts, "best": best,
            "world_size": trainer.world_size,
        }
        runs.write_json(run_dir / "metrics.json", metrics)
    print_results(results, objective.primary)
    print(f"run directory: {run_dir}")
    return run_dir


def print_results(results: dict, primary: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({k for m in results.values() for k in m}, key=lambda k: (k != primary, k))
    table = Table("split", *names)
    for split, m in results.items():
        table.add_row(split, *(f"{m[k]:.4f}" if k in m else "" for k in names))
    Console().print(table)


def evaluate_run(run_dir: Path, registry, progress: bool = True) -> dict:
    if joint.is_joint(runs.read_config(run_dir)):
        return evaluate_joint_run(run_dir, registry, progress)
    quiet_lightning()
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry)
    machine.configure(cfg)
    prepare(task, cfg)
    dm = SuiteDataModule(task, tokenizer, cfg)
    results = evaluate_module(module, dm, cfg, progress)
    print_results(results, module.objective.primary)
    return results


def predict(run_dir: Path, text: str, options: dict, registry, task: str | None = None) -> str:
    """``task``: which task of a joint run answers."""
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry, task=task)
    module.eval()
    with torch.no_grad():
        return task.predict(module, text, options)


def resolve_for_train(task, registry, *, config_file=None, overrides=None, args=()) -> dict:
    return config_mod.resolve(task, config_file=config_file, overrides=overrides, presets=registry.all_presets(), args=args)


# -- joint runs (core/joint.py): the same steps for several tasks on one backbone -------------------
def train_joint(tasks: dict, cfg: dict, registry, *, resume: Path | None = None, progress: bool = True) -> Path:
    """Train a joint run and write its run directory (as ``train`` does for one task)."""
    quiet_lightning()
    settings = machine.configure(continued_threads(cfg, resume))
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    for n, task in tasks.items():
        prepare(task, joint.task_config(cfg, n))
    if resume is not None:
        run_dir = Path(resume)
        _, _, tokenizers, module = runs.load_joint(run_dir, registry, weights=False)
        ckpt, init_counts = resumed(run_dir, module, cfg)
    else:
        source = adopt_source_backbone(cfg, registry)
        tokenizers = joint.Tokenizers({n: t.build_tokenizer(joint.task_config(cfg, n)) for n, t in tasks.items()})
        module = joint.JointModule(tasks, tokenizers, cfg)
        init_counts = apply_init(module, cfg, registry, source)
        run_dir = shared_run_dir(cfg)
        ckpt = None
    with cleaned_up_on_failure(run_dir, fresh=resume is None):
        if launch_rank() == 0:
            runs.save_run_files(run_dir, cfg, tokenizers)
        say(f"run directory: {run_dir}")
        t = cfg["trainer"]
        budget = f"{t['max_steps']} steps" if int(t.get("max_steps", -1)) >= 0 else f"{t.get('max_epochs')} epochs"
        say(f"joint run of {', '.join(tasks)} (mix {cfg['joint']['mix']}): {sum(p.numel() for p in module.parameters()):,} "
                   f"parameters, backbone {runs.describe_backbone(cfg['backbone'])}, {budget}")
        say(f"precision {t.get('precision', '32-true')}, {settings}")
        if cfg["run"].get("compile"):
            backend = cfg["run"]["compile"]
            module.backbone.compile(backend="inductor" if backend is True else str(backend))
        dm = joint.JointDataModule(tasks, tokenizers, cfg)
        trainer = make_trainer(joint.trainer_settings(cfg), run_dir, progress=progress,
                               objectives={n: m.objective for n, m in module.members.items()})
        train_time = fit(trainer, module, dm, run_dir, ckpt)
        results = evaluate_module(module, dm, cfg, progress, trainer=trainer)
        if trainer.global_rank == 0:
            runs.save_joint_weights(module, run_dir)
        best = evaluate_joint_best(module, dm, cfg, trainer, progress, results)
        if trainer.global_rank != 0:
            return run_dir
        for split, extra in module.artifacts.items():
            for name, value in extra.items():
                (run_dir / joint.split_name(split)[0]).mkdir(exist_ok=True)
                runs.write_json(run_dir / f"{split}_{name}.json", value)
        per_task = {}
        for (n, m), weight in zip(module.members.items(), dm.weights):
            per_task[n] = {"primary": m.objective.primary, "higher_is_better": m.objective.higher_is_better,
                           "steps": module.task_steps[n], "mix": round(weight / sum(dm.weights), 6),
                           "splits": {joint.split_name(s)[1]: v for s, v in results.items() if joint.split_name(s)[0] == n}}
        metrics = {"task": cfg["task"], "tasks": per_task, "step": trainer.global_step,
                   "train_seconds": round(train_time, 1), "splits": results, "history": module.history,
                   "init": init_counts, "best": best, "world_size": trainer.world_size}
        runs.write_json(run_dir / "metrics.json", metrics)
    print_joint_results(results, {n: info["primary"] for n, info in per_task.items()})
    print(f"run directory: {run_dir}")
    return run_dir


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


def evaluate_joint_run(run_dir: Path, registry, progress: bool = True) -> dict:
    quiet_lightning()
    tasks, cfg, tokenizers, module = runs.load_joint(run_dir, registry)
    machine.configure(cfg)
    for n, task in tasks.items():
        prepare(task, joint.task_config(cfg, n))
    results = evaluate_module(module, joint.JointDataModule(tasks, tokenizers, cfg), cfg, progress)
    print_joint_results(results, {n: m.objective.primary for n, m in module.members.items()})
    return results
