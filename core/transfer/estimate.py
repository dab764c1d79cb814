"""`suite transfer --dry-run`: every run a plan would make, counts by kind, total steps, and a
wall time estimated from a short calibration measured on this machine.

Calibration: for every (task, architecture) the plan trains, four short runs with the experiment's
own settings (k steps twice, 3k steps with one validation check and with three) give the cost of
a training step, of a validation check, of a run's fixed overhead (building the model, the test
evaluation, writing the run) and of building the task's data (paid once per task and seed in a
process). A run of S steps with E checks is then estimated as overhead + S x step + E x check.
Measurements are kept in <out>/calibration.json, keyed by the run's settings, the torch thread
count and the host, and reused until --recalibrate. Each records the load average it was measured
under: on a busy machine the estimate is for that machine as busy as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from .execute import DATA_CACHE, Runner, cell_path, source_done, write_atomic
from .plan import SCRATCH, Cell, SourceRun, counts, steps_of


def calibration_key(cfg: dict, steps: int) -> str:
    import torch

    same = {k: v for k, v in cfg.items() if k not in ("run", "seed")}
    same = {**same, "init": None, "optim": {k: v for k, v in cfg["optim"].items() if k != "lr"},
            "trainer": {k: v for k, v in cfg["trainer"].items() if k not in ("max_steps", "val_check_interval")}}
    text = json.dumps([same, steps, torch.get_num_threads(), platform.node()], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def measure(runner: Runner, task: str, arch: str, steps: int, root: Path) -> dict:
    """Four short runs of one (task, architecture), timed from outside: k steps twice (the first
    builds the data, the second finds it cached), 3k steps with one check, 3k steps with three."""
    cell = Cell(task, SCRATCH, "none", float(runner.exp["lrs"][0]), int(runner.exp["seeds"][0]), arch)
    walls = []
    for i, (k, evals) in enumerate(((steps, 1), (steps, 1), (3 * steps, 1), (3 * steps, 3))):
        cfg = runner.cell_config(cell, steps=k, evals=evals, **{"run.root": str(root), "run.name": f"calibrate-{i}"})
        start = time.perf_counter()
        runner.train(task, cfg, root / f"{task}-{i}.log")
        walls.append(time.perf_counter() - start)
    fresh, short, long1, long3 = walls
    step = max(1e-6, (long1 - short) / (2 * steps))
    check = max(0.0, (long3 - long1) / 2)
    return {"task": task, "arch": arch, "steps": [steps, 3 * steps], "step": step, "check": check,
            "overhead": max(0.0, short - steps * step - check), "data": max(0.0, fresh - short),
            "measured": time.strftime("%Y-%m-%d %H:%M"), "load": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}


def calibrate(exp: dict, registry, out: Path, pairs: list[tuple[str, str]], steps: int, recalibrate: bool = False,
              log=print) -> dict:
    """{(task, arch): costs}, measured now or read back from <out>/calibration.json."""
    runner = Runner(exp, registry, out)
    path = out / "calibration.json"
    stored = {} if recalibrate or not path.is_file() else json.loads(path.read_text())
    result, fresh = {}, 0
    root = Path(tempfile.mkdtemp(prefix="suite-calibrate-"))
    try:
        for task, arch in pairs:
            cell = Cell(task, SCRATCH, "none", float(exp["lrs"][0]), int(exp["seeds"][0]), arch)
            key = calibration_key(runner.cell_config(cell, steps=steps, evals=1), steps)
            if key not in stored:
                DATA_CACHE.clear()  # so the first run pays for building this task's data, as a fresh process does
                log(f"  calibrating {task} ({arch}): runs of {steps} and {3 * steps} steps")
                stored[key] = measure(runner, task, arch, steps, root)
                fresh += 1
            result[(task, arch)] = stored[key]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        DATA_CACHE.clear()
    if fresh:
        write_atomic(path, stored)
    return result


def run_seconds(cost: dict, steps: int, evals: int) -> float:
    return cost["overhead"] + steps * cost["step"] + evals * cost["check"]


def wall_time(exp: dict, cells: list[Cell], sources: list[SourceRun], cal: dict) -> dict:
    """Seconds by kind for the runs given (those left to do), one after another in one process,
    plus one data build per (task, seed)."""
    by_kind: dict[str, float] = {}
    evals = int(exp.get("evals", 4))
    for run in [*sources, *cells]:
        if isinstance(run, SourceRun):  # a joint source: each task's share of the steps at its cost
            s = sum(run_seconds(cal[(t, exp["preset"])], run.steps, evals) for t in run.tasks)
        else:
            s = run_seconds(cal[(run.target, run.arch)], steps_of(exp, run), evals)
        by_kind[run.label] = by_kind.get(run.label, 0.0) + s
    builds = {(t, r.seed) for r in sources for t in r.tasks} | {(c.target, c.seed) for c in cells}
    data = sum(max(v["data"] for (t, _), v in cal.items() if t == task) for task, _ in builds)
    return {"by_kind": by_kind, "data": data, "total": sum(by_kind.values()) + data}


def process_age() -> float:
    """Seconds since this process started (imports, plugins, the plan): the start-up a real run pays too."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def dry_run(exp: dict, registry, out: Path, cells: list[Cell], sources: list[SourceRun], calibrate_steps: int = 20,
            recalibrate: bool = False, show_runs: bool = True) -> dict:
    """Print the plan and its estimate; train nothing but the calibration runs. Returns the figures."""
    startup = process_age()
    done_cells = {c for c in cells if cell_path(out, c).is_file()}
    done_sources = {s for s in sources if source_done(s.path(out))}
    print(f"transfer --dry-run ({exp.get('profile', 'custom')} profile): preset {exp['preset']}; "
          f"targets {', '.join(exp['targets'])}; sources {', '.join(exp['sources'])}; freeze {', '.join(exp['freeze'])}; "
          f"lrs {', '.join(f'{x:g}' for x in exp['lrs'])}; seeds {', '.join(map(str, exp['seeds']))}; output {out}")
    for name, why in (exp.get("left_out") or {}).items():
        print(f"  left out of 'all': {name} ({why})")
    if show_runs:
        for s in sources:
            print(f"  - source  {s.task:<14} seed {s.seed:<3} {s.steps:>7} steps  {'done' if s in done_sources else 'to do'}  "
                  f"{s.path(out)}")
        for c in cells:
            print(f"  - target  {c.target:<14} <- {c.arm:<22} lr {c.lr:<8g} seed {c.seed:<3} {steps_of(exp, c):>7} steps  "
                  f"{'done' if c in done_cells else 'to do'}")
    table = counts(exp, [*sources, *cells])
    print("runs by kind:")
    for label, row in table.items():
        print(f"  {label:<26} {row['runs']:>6,} runs {row['steps']:>12,} steps")
    total_steps = sum(r["steps"] for r in table.values())
    print(f"  {'total':<26} {len(cells) + len(sources):>6,} runs {total_steps:>12,} steps   "
          f"({len(cells):,} target runs + {len(sources):,} source runs)")
    todo_cells = [c for c in cells if c not in done_cells]
    todo_sources = [s for s in sources if s not in done_sources]
    print(f"already finished: {len(done_cells)} of {len(cells)} target runs, {len(done_sources)} of {len(sources)} source runs")
    figures = {"target_runs": len(cells), "source_runs": len(sources), "steps": total_steps, "counts": table,
               "todo": len(todo_cells) + len(todo_sources)}
    if calibrate_steps <= 0:
        print("estimated wall time: not measured (--calibrate-steps 0)")
        return figures
    pairs = list(dict.fromkeys([(t, exp["preset"]) for s in todo_sources for t in s.tasks] + [(c.target, c.arch) for c in todo_cells]))
    start = time.time()
    cal = calibrate(exp, registry, out, pairs, calibrate_steps, recalibrate)
    print(f"calibration ({time.time() - start:.0f} s; seconds per step / per validation check / per run / per data build):")
    for (task, arch), c in cal.items():
        print(f"  {task:<14} {arch:<16} {c['step']:.4f} / {c['check']:.2f} / {c['overhead']:.2f} / {c['data']:.2f}   "
              f"(measured {c['measured']}, load average {c.get('load', float('nan')):.1f} on {c.get('cores', '?')} cores)")
    est = wall_time(exp, todo_cells, todo_sources, cal)
    est["startup"] = startup
    est["total"] += startup
    figures["estimate"] = est
    print(f"estimated wall time of what is left, one run after another (--executor local): {hms(est['total'])}")
    for label, seconds in est["by_kind"].items():
        print(f"  {label:<26} {hms(seconds)}")
    print(f"  {'data builds':<26} {hms(est['data'])}")
    print(f"  {'start-up':<26} {hms(startup)}   (the report's plots are not included)")
    if exp.get("executor") == "ray":
        slots = max(1, int((os.cpu_count() or 1) // max(exp["resources"]["cpus"], 1e-9)))
        print(f"with --executor ray, {slots} runs at once on this machine's {os.cpu_count()} cores: about "
              f"{hms((est['total'] - est['data']) / slots + est['data'])} if they do not slow each other down")
    return figures
