"""Executing a plan: every run trains through ``suite.train.train``, in this process or on Ray.

A finished target run is one JSON file in ``cells/``, written to a temporary name and renamed
(``os.replace``), so a cell file is either complete or absent: any process may die and the same
command finishes the rest without redoing a finished run. A cell file that does not read back
(damaged, or of an older format without a field the summary needs) is not finished: a warning
names it and its run is trained again. A task source is finished when its run directory's
metrics.json (the last file ``train`` writes) is complete.

Executors:
  local  one run after another in this process (the default; needs no Ray)
  ray    every run is a Ray task with its own resources (``resources.cpus``, ``resources.gpus``;
         0.25 GPUs packs four runs on one GPU) on a local Ray or a cluster (``ray_address``);
         each source is one task whose result the cells that start from it wait for. On a
         cluster, ``out`` must be on a file system every node sees.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .. import config as config_mod
from .. import runs
from ..errors import SuiteError
from ..registry import warn
from .plan import SCRATCH, Cell, SourceRun, budget, pretrained_here, run_overrides, source_run

# One per process: runs of the same task, data settings and seed share a tokenizer and datasets
# (a Ray worker process keeps it between the tasks it runs).
DATA_CACHE: dict = {}


class Runner:
    """Turns a cell or a source run into a resolved config, trains it, and reads what it wrote."""

    def __init__(self, exp: dict, registry, out: Path, threads: int | None = None):
        self.exp, self.registry, self.out = exp, registry, Path(out)
        self.threads = threads  # torch threads of every run (Ray: its CPUs), not run.threads "auto", which counts idle cores

    def run_config(self, task_name: str, steps: int, seed: int, evals: int | None = None, **extra) -> dict:
        task = self.registry.task(task_name)
        if self.threads:
            extra = {"run.threads": self.threads, **extra}
        overrides = run_overrides(self.exp, task, steps, seed, evals, **extra)
        cfg = config_mod.resolve(task, overrides=overrides, presets=self.registry.all_presets())
        cfg["optim"]["warmup_steps"] = min(int(cfg["optim"]["warmup_steps"]), max(1, steps // 10))
        return cfg

    def cell_config(self, cell: Cell, source_path: str | None = None, steps: int | None = None,
                    evals: int | None = None, **extra) -> dict:
        extra = {"optim.lr": cell.lr, "run.root": str(self.out / "runs"), "run.name": cell.id, "adapt.method": cell.adapt,
                 **({} if cell.size is None else {"data.train_limit": cell.size}), **extra}
        extra.update(self.init_settings(cell, source_path))
        cfg = self.run_config(cell.target, steps or cell.steps or budget(self.exp, cell.target), cell.seed, evals, **extra)
        if cell.source == SCRATCH and not cell.arch_is_preset:  # a weight source's architecture, from scratch
            spec = cell.arch[len("source:"):]
            cfg["backbone"] = {**cfg["backbone"], "preset": spec.partition(":")[0], **runs.load_source(spec, self.registry).backbone}
        return cfg

    def train(self, task_name: str, cfg: dict, log: Path) -> Path:
        from ..train import Run, execute

        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            return execute(Run.of(cfg, self.registry, data_cache=DATA_CACHE, progress=False))

    def init_settings(self, cell: Cell, source_path: str | None = None) -> dict:
        """Where the cell's weights start: ``init.from`` the source, or for a side arm
        ``init.encoder_from`` and/or ``init.decoder_from``; nothing for scratch."""
        return {key: source_path or self.source_path(cell) for key in cell.init_keys}

    def source_path(self, cell: Cell) -> str:
        if not pretrained_here(cell.source, self.registry.all_tasks()):
            return cell.source  # a weight source: --init-from NAME
        return str(source_run(self.exp, self.registry, cell.source, cell.seed).path(self.out))

    def source(self, src: SourceRun) -> str:
        """Pretrain a task source unless it is finished; its run directory."""
        path = src.path(self.out)
        if source_done(path):
            return str(path)
        shutil.rmtree(path, ignore_errors=True)  # left half-done by an interrupted matrix
        where = {"run.root": str(self.out / "sources"), "run.name": src.name}
        if len(src.tasks) == 1:
            cfg = self.run_config(src.task, src.steps, src.seed, **where)
        else:  # a joint source: src.steps for each of its tasks
            from ..joint import combine

            cfg = combine({t: self.run_config(t, src.steps * len(src.tasks), src.seed, **where) for t in src.tasks})
        self.train(src.task, cfg, self.out / "logs" / f"source-{src.name}.log")
        return str(path)

    def cell(self, cell: Cell, source_path: str | None = None) -> dict:
        """Train one target run (its source must be finished) and return its cell record."""
        if pretrained_here(cell.source, self.registry.all_tasks()) and not source_done(Path(source_path or self.source_path(cell))):
            raise SuiteError(f"{cell.id}: its source {source_path or self.source_path(cell)} is not finished")
        cfg = self.cell_config(cell, source_path)
        shutil.rmtree(self.out / "runs" / cell.target / cell.id, ignore_errors=True)
        start = time.time()
        run_dir = self.train(cell.target, cfg, self.out / "logs" / f"{cell.id}.log")
        return cell_record(cell, cfg, run_dir, time.time() - start)


def cell_record(cell: Cell, cfg: dict, run_dir: Path, seconds: float) -> dict:
    """What a cell file holds: the run's config and scores, oriented so that higher is better."""
    m = runs.read_metrics(run_dir)
    sign = 1.0 if m["higher_is_better"] else -1.0
    primary = m["primary"]
    fields = {k: v for k, v in asdict(cell).items() if not (k == "side" and v is None)}  # other arms' records as before
    record = {
        **fields, "arm": cell.arm, "metric": primary, "higher_is_better": m["higher_is_better"],
        "val": sign * m["splits"]["val"][primary], "test": sign * m["splits"]["test"][primary],
        "raw_test": m["splits"]["test"][primary],
        "curve": [[h["step"], sign * h[primary]] for h in m["history"] if primary in h],
        "init": m.get("init"), "adapted": m.get("adapt"), "seconds": round(seconds, 1), "train_seconds": m.get("train_seconds"),
        "run_dir": str(run_dir), "config": cfg,
    }
    best = (m.get("best") or {}).get("splits", {}).get("test", {})  # the best-validation checkpoint, when train records it
    if primary in best:
        record["test_best"] = sign * best[primary]
    return record


# -- finished runs on disk ------------------------------------------------------------------------
def cell_path(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.id}.json"


def write_atomic(path: Path, data) -> None:
    """The file is either absent or complete (``runs.atomic``)."""
    runs.write_json(path, data, indent=1)


def write_cell(out: Path, cell: Cell, record: dict) -> None:
    write_atomic(cell_path(out, cell), record)


def source_done(path: Path) -> bool:
    try:
        return "splits" in json.loads((Path(path) / "metrics.json").read_text())
    except (OSError, ValueError):
        return False


# what the summary and the report read of every cell record (a cell written before one of them existed is run again)
CELL_KEYS = ("target", "source", "adapt", "lr", "seed", "arch", "arm", "metric", "higher_is_better",
             "val", "test", "raw_test", "curve")


def read_cell(out: Path, cell: Cell, hint: str = "delete it and run the same command again: its run is trained again") -> dict:
    """A cell's record; a ``SuiteError`` naming the file if it is damaged or of an older format."""
    record = runs.read_json(cell_path(out, cell), hint, CELL_KEYS)
    if not isinstance(record["curve"], list) or any(record.get(k) != v for k, v in asdict(cell).items() if k in (*CELL_KEYS, "side")):
        raise SuiteError(f"{cell_path(out, cell)}: not the record of run {cell.id} (damaged, or of another version); {hint}")
    return record


def cell_done(out: Path, cell: Cell) -> bool:
    """Whether the cell's file holds its finished run; a file that does not read back is not, with a warning."""
    if not cell_path(out, cell).is_file():
        return False
    try:
        read_cell(out, cell, "its run is trained again")
    except SuiteError as e:
        warn(str(e))
        return False
    return True


def read_cells(out: Path, cells: list[Cell]) -> list[dict]:
    return [read_cell(out, c) for c in cells]


@contextlib.contextmanager
def lock(out: Path):
    """One driver per output directory: a second `suite transfer` on the same --out is refused."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SuiteError(f"{out}: another `suite transfer` is writing this matrix; wait for it or give another --out") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


# -- executors --------------------------------------------------------------------------------------
class Failures:
    def __init__(self, out: Path):
        self.out, self.items = out, []

    def add(self, run, error: BaseException) -> None:
        text = str(error).strip().splitlines()
        self.items.append((getattr(run, "id", None) or run.name, text[-1] if text else type(error).__name__))

    def raise_if_any(self, total: int) -> None:
        if self.items:
            name, reason = self.items[0]
            raise SuiteError(f"{len(self.items)} of {total} runs failed (first: {name}: {reason}); logs in "
                             f"{self.out / 'logs'}; run the same command again to retry them")


def progress_bar(progress: bool):
    from ..progress import counter

    return counter(progress)


def run_local(exp: dict, registry, out: Path, todo: list[Cell], progress: bool = True) -> None:
    """One run after another in this process; sources are pretrained when a cell first needs them."""
    runner = Runner(exp, registry, out)
    failures = Failures(out)
    with progress_bar(progress) as bar:
        job = bar.add_task("transfer", total=len(todo))
        for cell in todo:
            bar.update(job, description=f"{cell.target} <- {cell.arm} lr={cell.lr:g} seed={cell.seed}")
            try:
                source = runner.source(source_run(exp, registry, cell.source, cell.seed)) \
                    if pretrained_here(cell.source, registry.all_tasks()) else None
                write_cell(out, cell, runner.cell(cell, source))
            except Exception as e:  # one failed run does not stop the others; the command reports it
                failures.add(cell, e)
            bar.advance(job)
    failures.raise_if_any(len(todo))


def _ray_source(exp: dict, out: str, src: SourceRun, threads: int) -> str:
    import torch

    from ..registry import get_registry
    from ..train import quiet_lightning

    torch.set_num_threads(threads)
    quiet_lightning()
    return Runner(exp, get_registry(), Path(out), threads).source(src)


def _ray_cell(exp: dict, out: str, cell: Cell, source_path: str | None, threads: int) -> str:
    import torch

    from ..registry import get_registry
    from ..train import quiet_lightning

    torch.set_num_threads(threads)
    quiet_lightning()
    record = Runner(exp, get_registry(), Path(out), threads).cell(cell, source_path)
    write_cell(Path(out), cell, record)  # written by the worker: the driver may die, the cell stays
    return cell.id


def run_ray(exp: dict, registry, out: Path, todo: list[Cell], sources: list[SourceRun], progress: bool = True) -> None:
    """Every run a Ray task; a cell waits for its source's task, which runs once however many cells need it."""
    try:
        import ray
    except ImportError:
        raise SuiteError("--executor ray needs Ray: pip install 'suite[ray]'") from None
    res = exp["resources"]
    threads = max(1, int(res["cpus"]))
    options = {"num_cpus": res["cpus"], "num_gpus": res["gpus"], "max_retries": 2}
    try:
        ray.init(address=exp.get("ray_address") or None, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SuiteError(f"--ray-address {exp.get('ray_address')}: cannot reach Ray: {str(e).splitlines()[0]}") from None
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        total = ray.cluster_resources()
        if res["gpus"] > total.get("GPU", 0) or res["cpus"] > total.get("CPU", 0):
            raise SuiteError(f"resources: a run asks for {res['cpus']:g} CPUs and {res['gpus']:g} GPUs; the Ray cluster has "
                             f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")
        source_task = ray.remote(_ray_source).options(**options)
        cell_task = ray.remote(_ray_cell).options(**options)
        needed = {(c.source, c.seed) for c in todo}
        source_refs, pending = {}, {}
        for src in sources:
            if (src.task, src.seed) not in needed:
                continue
            path = src.path(out)
            if source_done(path):
                source_refs[(src.task, src.seed)] = str(path)
            else:
                ref = source_task.remote(exp, str(out), src, threads)
                source_refs[(src.task, src.seed)] = ref
                pending[ref] = src
        for cell in todo:
            pending[cell_task.remote(exp, str(out), cell, source_refs.get((cell.source, cell.seed)), threads)] = cell
        failures = Failures(out)
        with progress_bar(progress) as bar:
            job = bar.add_task(f"transfer on Ray ({res['cpus']:g} CPUs, {res['gpus']:g} GPUs a run)", total=len(pending))
            waiting = list(pending)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)  # wakes up for Ctrl-C
                if not ready:
                    continue
                try:
                    ray.get(ready[0])
                except Exception as e:  # noqa: BLE001  (a RayTaskError wraps the run's own error)
                    failures.add(pending[ready[0]], getattr(e, "cause", None) or e)
                bar.advance(job)
        failures.raise_if_any(len(pending))
    finally:
        ray.shutdown()  # a local Ray goes with it; finished cells are on disk already
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # `kill PID` shuts the local Ray down as Ctrl-C does
