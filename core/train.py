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
from . import adapt, joint, machine, runs
from .cache import prepare
from .checkpoints import continued_threads
from .data import SuiteDataModule
from .errors import SuiteError
from .evaluate import evaluate_best, evaluate_module, print_results, print_task_results  # noqa: F401
from .fitting import (RUN_DIR_ENV, MovingAverage, cleaned_up_on_failure, fit, launch_rank, make_trainer,  # noqa: F401
                      quiet_lightning, say, shared_run_dir)
from .init_from import adopt_source_backbone, apply_init, build  # noqa: F401  (suite.train.build etc., as before)
from .module import SuiteModule


ALIGN_FILE = "align.json"  # ORCA's align stage: its distances before and after


def resumed(run_dir: Path, module, cfg: dict) -> tuple[Path, dict | None]:
    """A run to continue: its checkpoints/last.ckpt and its --init-from counts; ``module`` takes ``cfg``."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SuiteError(f"{run_dir}: no checkpoints/last.ckpt to resume from")
    module.cfg = cfg
    module.adapted = adapt.apply(module, cfg)
    done = runs.read_metrics(run_dir, missing_ok=True)
    return ckpt, done.get("init") if done else None


@dataclass
class Run:
    """One run as it goes down, once: its settings (``cfg``, resolved), its tasks (one, or the tasks
    of a joint run sharing the backbone: core/joint.py), the run it continues (``resume``); then
    what ``build`` makes (tokenizers, the ``SuiteModule`` of the set of tasks, data, run directory,
    the --init-from counts), what ``fit`` trains, and what ``write`` puts in the run directory.
    A run of one task is the set of one: nothing here asks how many tasks there are.

    ``data_cache``: a dict shared by many runs in one process (the transfer matrix); runs of a task
    with the same data settings and seed reuse one tokenizer and one set of datasets."""

    cfg: dict
    tasks: dict
    registry: object
    resume: Path | None = None
    data_cache: dict | None = None
    progress: bool = True
    run_dir: Path | None = None
    tokenizer: object = None  # joint.Tokenizers: every task's by name
    module: object = None
    dm: object = None
    init_counts: dict | None = None
    ckpt: Path | None = None
    cache_keys: dict = field(default_factory=dict)  # task -> its key in data_cache

    @classmethod
    def of(cls, cfg: dict, registry, **kwargs) -> "Run":
        """The run of a resolved config: its task, or a joint run's tasks."""
        return cls(cfg, {n: registry.task(n) for n in joint.task_names(cfg)}, registry, **kwargs)

    @property
    def task(self):
        return next(iter(self.tasks.values()))

    def task_config(self, name: str) -> dict:
        return joint.task_config(self.cfg, name)

    # -- build: tokenizers, module, weights to start from, data --------------------------------
    def prepare(self) -> None:
        """Every task's downloads and caches, once, before anything reads them."""
        for name, task in self.tasks.items():
            prepare(task, self.task_config(name))

    def load(self, weights: bool = True, config: bool = False) -> None:
        """Tokenizers and module from ``run_dir`` (with its weights); ``config``: its saved config too."""
        _, cfg, self.tokenizer, self.module = runs.load_set(self.run_dir, self.registry, weights=weights)
        if config:
            self.cfg = cfg

    def cached(self, name: str):
        """(tokenizer, datasets) of task ``name`` that an earlier run in this process built, or None."""
        key = self.cache_keys.get(name)
        return self.data_cache.get(key) if key else None

    def build(self) -> None:
        cfg, registry = self.cfg, self.registry
        adapt.check(cfg)
        self.prepare()
        if self.resume is not None:
            self.run_dir = Path(self.resume)
            self.load(weights=False)
            self.ckpt, self.init_counts = resumed(self.run_dir, self.module, cfg)
        else:
            source = adopt_source_backbone(cfg, registry)
            tokenizers, own = {}, {}
            for name, task in self.tasks.items():
                tcfg = self.task_config(name)
                # A task may adopt the source's vocabulary, and with it the source's embeddings.
                tokenizer = task.tokenizer_from_source(source[4], tcfg) if source else None
                if tokenizer is not None:
                    own[name] = source[4].state_dict
                member = None if source else runs.member_source(cfg["init"].get("from"), task)
                if member:  # a joint run that trained this task: its tokenizer, adapter and head too
                    tokenizer, own[name] = member
                if self.data_cache is not None and tokenizer is None:
                    self.cache_keys[name] = json.dumps([name, tcfg["data"], cfg["seed"]], sort_keys=True, default=str)
                cached = self.cached(name)
                if tokenizer is None:
                    tokenizer = cached[0] if cached else task.build_tokenizer(tcfg)
                tokenizers[name] = tokenizer
            self.tokenizer = joint.Tokenizers(tokenizers)
            self.module = SuiteModule(self.tasks, self.tokenizer, cfg)
            self.init_counts = apply_init(self.module, cfg, registry, source, own=own)
        if self.run_dir is None:
            self.run_dir = shared_run_dir(cfg)

    def data(self) -> SuiteDataModule:
        cached = {n: self.cached(n)[1] for n in self.tasks if self.cached(n)}
        dm = SuiteDataModule(self.tasks, self.tokenizer, self.cfg, datasets=cached)
        if any(n not in cached for n in self.cache_keys):
            dm.setup()
            for n, key in self.cache_keys.items():
                self.data_cache.setdefault(key, (self.tokenizer[n], dm.members[n].datasets))
        return dm

    def describe(self) -> str:
        t = self.cfg["trainer"]
        budget = f"{t['max_steps']} steps" if int(t.get("max_steps", -1)) >= 0 else f"{t.get('max_epochs')} epochs"
        what = f"task {self.task.name}" if len(self.tasks) == 1 else f"joint run of {', '.join(self.tasks)} (mix {self.cfg['joint']['mix']})"
        a = self.module.adapted
        return (f"{what}: {a['parameters']:,} parameters ({a['trainable']:,} train, {100 * a['share']:.2f}%, adapt {a['method']}), "
                f"backbone {runs.describe_backbone(self.cfg['backbone'])}, {budget}")

    def align(self) -> None:
        """ORCA's align stage (``--adapt orca``, core/orca.py), before fitting; its distances go to
        align.json (a resumed run has its weights from the checkpoint, and its figures from there)."""
        if not adapt.aligns(self.cfg) or self.resume is not None:
            return
        from . import orca

        self.dm.setup()
        aligned = orca.align(self.module, self.dm, self.cfg, self.registry)
        if launch_rank() == 0:
            runs.write_json(self.run_dir / ALIGN_FILE, aligned)

    def adapted(self) -> dict:
        """metrics.json's ``adapt``: the method, trainable parameters and their share, and ORCA's distances."""
        aligned = self.run_dir / ALIGN_FILE
        return {**self.module.adapted, **({"align": json.loads(aligned.read_text())} if aligned.is_file() else {})}

    def make_trainer(self) -> pl.Trainer:
        return make_trainer(joint.trainer_settings(self.cfg), self.run_dir, progress=self.progress,
                            objectives={n: m.objective for n, m in self.module.members.items()},
                            extra_callbacks=self.module.callbacks())

    # -- write: weights, artefacts, metrics.json ------------------------------------------------
    def save_weights(self) -> None:
        runs.save_set_weights(self.module, self.run_dir)
        for split, extra in self.module.artifacts.items():
            for name, value in extra.items():
                (self.run_dir / f"{split}_{name}.json").parent.mkdir(exist_ok=True)  # a joint run: <task>/
                runs.write_json(self.run_dir / f"{split}_{name}.json", value)

    def best(self, trainer: pl.Trainer, results: dict) -> dict | None:
        return evaluate_best(self.module, self.dm, self.cfg, trainer, self.progress, results)

    def metrics(self, trainer: pl.Trainer, results: dict, train_time: float, best: dict | None) -> dict:
        """metrics.json: the run's figures; each task's primary metric, steps, share of the mix, splits
        and best checkpoint (in a run of one task, at the top level, as a run of one task always had them)."""
        names = self.module.names
        tasks = {n: {"primary": m.objective.primary, "higher_is_better": m.objective.higher_is_better,
                     "steps": self.module.task_steps[n], "mix": round(w / sum(self.dm.weights), 6),
                     "splits": {joint.split_of(names, s)[1]: v for s, v in results.items() if joint.split_of(names, s)[0] == n}}
                 for (n, m), w in zip(self.module.members.items(), self.dm.weights)}
        m = {"task": self.cfg["task"], "step": trainer.global_step, "train_seconds": round(train_time, 1)}
        if len(names) == 1:
            m.update(primary=tasks[names[0]]["primary"], higher_is_better=tasks[names[0]]["higher_is_better"])
            best = best and best[names[0]]
        else:
            m["tasks"] = tasks
        return {**m, "splits": results, "history": self.module.history, "init": self.init_counts, "adapt": self.adapted(),
                "best": best, "world_size": trainer.world_size}

    def print_results(self, results: dict) -> None:
        print_task_results(results, self.module)


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
        run.align()
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


def evaluate_run(run_dir: Path, registry, progress: bool = True, data: dict | None = None) -> dict:
    """A finished run (or an export of one) on "val" and every test split, printed: its ``Run``
    loaded, not trained. ``data``: ``--data.*`` settings over the run's, for its task's
    ``build_eval_data`` (the user's own data, with the run's tokenizer)."""
    quiet_lightning()
    run = Run.of(runs.read_config(run_dir), registry, progress=progress, run_dir=Path(run_dir))
    run.load(weights=True, config=True)
    machine.configure(run.cfg)
    if not data:
        run.prepare()
        results = evaluate_module(run.module, run.data(), run.cfg, progress)
    else:
        if len(run.tasks) > 1:
            raise SuiteError("--data.* settings evaluate a run of one task; this is a joint run")
        run.cfg["data"] = {**run.cfg["data"], **data}
        prepare(run.task, run.cfg)
        datasets = run.task.build_eval_data(run.tokenizer[run.task.name], run.cfg)
        if not datasets:
            raise SuiteError(f"task {run.task.name}: these --data settings make no evaluation split")
        dm = SuiteDataModule(run.task, run.tokenizer, run.cfg, datasets=datasets)
        results = evaluate_module(run.module, dm, run.cfg, progress, splits=list(datasets))
    run.print_results(results)
    return results


def predict(run_dir: Path, text: str, options: dict, registry, task: str | None = None) -> str:
    """``task``: which task of a joint run answers."""
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry, task=task)
    module.eval()
    with torch.no_grad():
        return task.predict(module, text, options)


def score_pairs(run_dir: Path, pairs_file: Path, registry, task: str | None = None) -> list[tuple[str, str, float]]:
    """log p(output | input) of every pair of a TSV file (``input<TAB>output`` a line), by the run's
    sequence-to-sequence task (``Task.score``)."""
    pairs = read_pairs(Path(pairs_file))
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry, task=task)
    if not hasattr(task, "score"):
        raise SuiteError(f"task {task.name!r} does not score (input, output) pairs; sequence-to-sequence tasks do")
    module.eval()
    with torch.no_grad():
        return [(s, t, v) for (s, t), v in zip(pairs, task.score(module, pairs))]


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``input<TAB>output`` lines (blank lines skipped); one clear error naming the line otherwise."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{path}: cannot read the pairs file ({e.strerror if isinstance(e, OSError) else 'not UTF-8 text'})") from None
    pairs = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            raise SuiteError(f"{path}:{i}: a pair is input<TAB>output, this line has {len(cells)} field(s)")
        pairs.append((cells[0], cells[1]))
    if not pairs:
        raise SuiteError(f"{path}: no pairs in the file")
    return pairs


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
        if names and names != joint.task_names(saved):
            raise SuiteError(f"--resume {resume} is {kind}, not {','.join(names)}")
        if config_file:
            raise SuiteError("--config applies to a new run; a resumed run keeps its config.yaml")
        names = joint.task_names(saved)
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


