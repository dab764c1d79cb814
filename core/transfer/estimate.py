"""`suite transfer --dry-run`: every run a plan would make, counts by kind, total steps, and a
wall time estimated from a calibration measured on this machine.

Calibration: for every (task, architecture) the plan trains, four short runs with the experiment's
own settings (k steps twice, 3k steps with one validation check and with three) give the cost of
a training step, of a validation check, of a run's fixed overhead (building the model, the test
evaluation, writing the run) and of building the task's data (paid once per task and seed in a
process). A run of S steps with E checks is then estimated as overhead + S x step + E x check.

Measurements are taken only with --calibrate and kept for every experiment of this user in
``suite.cache_dir("transfer")/calibration.json``, keyed by the run's settings, the torch thread
count and the host. A dry run trains nothing: a (task, architecture) measured with other settings
is used as an approximation and labelled so; one never measured is left out of the estimate, which
then says it is partial. Each measurement records the load average it was taken under: on a busy
machine the estimate is for that machine as busy as it was.
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

from ..cache import cache_dir, file_lock
from .execute import DATA_CACHE, Runner, cell_done, source_done, write_atomic
from .plan import SCRATCH, Cell, SourceRun, counts, executor_of, steps_of

# Costs of the tiny preset on 2 CPU cores, for a guess of how long calibrating a (task, architecture)
# never measured takes: scaled by the square root of the backbone's weights against tiny's (a CPU step
# of a small model is mostly overhead: MiniLM's architecture, 200 times tiny's weights, measured about
# 13 times a tiny step at batch 32 on one thread).
NOMINAL = {"step": 0.05, "check": 0.2, "overhead": 1.0, "data": 5.0}
NOMINAL_SIZE = 2 * 64 * (4 * 64 + 2 * 256)
NOT_INCLUDED = ("generating a data set that is not cached yet (e.g. chess positions labelled by Stockfish) "
                "unless its calibration did, the report and its plots")


def cache_path() -> Path:
    """The calibrations of every experiment of this user, on every host, by calibration key."""
    return cache_dir("transfer") / "calibration.json"


def calibration_key(cfg: dict, steps: int) -> str:
    import torch

    same = {k: v for k, v in cfg.items() if k not in ("run", "seed")}
    same = {**same, "init": None, "optim": {k: v for k, v in cfg["optim"].items() if k != "lr"},
            "trainer": {k: v for k, v in cfg["trainer"].items() if k not in ("max_steps", "val_check_interval")}}
    text = json.dumps([same, steps, torch.get_num_threads(), platform.node()], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def calibration_cell(exp: dict, task: str, arch: str) -> Cell:
    """What a (task, arch) is calibrated with: its scratch run at the first lr and seed."""
    return Cell(task, SCRATCH, "full", float(exp["lrs"][0]), int(exp["seeds"][0]), arch)


def calibration_configs(runner: Runner, pairs: list[tuple[str, str]], steps: int) -> dict[tuple[str, str], dict]:
    return {(task, arch): runner.cell_config(calibration_cell(runner.exp, task, arch), steps=steps, evals=1)
            for task, arch in pairs}


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: measured again when asked
        return {}
    return data if isinstance(data, dict) else {}


def stored_calibrations(out: Path) -> dict:
    """Every stored measurement by key: the user's cache, and a calibration.json in the output directory."""
    return {**read_json(Path(out) / "calibration.json"), **read_json(cache_path())}


def remember(key: str, cost: dict) -> None:
    """Add one measurement to the user's cache (another process may be adding its own)."""
    path = cache_path()
    with file_lock(path):
        write_atomic(path, {**read_json(path), key: cost})


def measure(runner: Runner, task: str, arch: str, steps: int, root: Path) -> dict:
    """Four short runs of one (task, architecture), timed from outside: k steps twice (the first
    builds the data, the second finds it cached), 3k steps with one check, 3k steps with three."""
    import torch

    cell = calibration_cell(runner.exp, task, arch)
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
            "measured": time.strftime("%Y-%m-%d %H:%M"), "load": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
            "host": platform.node(), "threads": torch.get_num_threads()}


def calibrate(exp: dict, registry, out: Path, pairs: list[tuple[str, str]], steps: int, recalibrate: bool = False,
              log=print) -> dict:
    """{(task, arch): costs}: those stored with these exact settings, the others (all of them with
    ``recalibrate``) measured now and added to the user's cache."""
    runner = Runner(exp, registry, out)
    stored = {} if recalibrate else stored_calibrations(out)
    result = {}
    root = Path(tempfile.mkdtemp(prefix="suite-calibrate-"))
    try:
        for (task, arch), cfg in calibration_configs(runner, pairs, steps).items():
            key = calibration_key(cfg, steps)
            if key not in stored:
                DATA_CACHE.clear()  # so the first run pays for building this task's data, as a fresh process does
                log(f"  calibrating {task} ({arch}): runs of {steps} and {3 * steps} steps")
                stored[key] = measure(runner, task, arch, steps, root)
                remember(key, stored[key])
            result[(task, arch)] = stored[key]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        DATA_CACHE.clear()
    return result


def lookup(exp: dict, registry, out: Path, pairs: list[tuple[str, str]], steps: int) -> tuple[dict, dict, dict]:
    """Stored costs of each (task, arch), training nothing: ({pair: costs}, {pair: why approximate},
    {pair: seconds its calibration would take, guessed} for the pairs never measured).
    A pair without a measurement of these exact settings takes the closest one of the same (task,
    arch) (this host, this thread count, these calibration steps, then the latest), marked
    approximate; a pair never measured is absent."""
    import torch

    stored = stored_calibrations(out)
    host, threads = platform.node(), torch.get_num_threads()
    found, approximate, guessed = {}, {}, {}
    for pair, cfg in calibration_configs(Runner(exp, registry, out), pairs, steps).items():
        key = calibration_key(cfg, steps)
        if key in stored:
            found[pair] = stored[key]
            continue
        like = [c for c in stored.values() if isinstance(c, dict) and (c.get("task"), c.get("arch")) == pair]
        if not like:
            guessed[pair] = guess_calibration(stored, pair[1], cfg, steps)
            continue
        best = max(like, key=lambda c: (c.get("host") == host, c.get("threads") == threads,
                                        c.get("steps") == [steps, 3 * steps], c.get("measured", "")))
        found[pair] = best
        why = ["approximate: measured with other settings"]
        if best.get("host") not in (None, host):
            why.append(f"on {best['host']}")
        elif best.get("threads") not in (None, threads):
            why.append(f"with {best['threads']} threads, not {threads}")
        approximate[pair] = " ".join(why)
    return found, approximate, guessed


def calibration_seconds(cost: dict, steps: int) -> float:
    """What measuring one (task, arch) takes: four runs, 8k steps and 6 checks in all, and a data build."""
    return 4 * cost["overhead"] + 8 * steps * cost["step"] + 6 * cost["check"] + cost["data"]


def guess_calibration(stored: dict, arch: str, cfg: dict, steps: int) -> float:
    """Seconds to calibrate a (task, arch) never measured: the median of what calibrating other tasks
    on the same architecture took, at ``steps``; else NOMINAL costs scaled by the backbone's size."""
    like = sorted(calibration_seconds(c, steps) for c in stored.values()
                  if isinstance(c, dict) and c.get("arch") == arch and {"step", "check", "overhead", "data"} <= set(c))
    if like:
        return like[len(like) // 2]
    b = cfg["backbone"]
    # an encoder-decoder's blocks: both stacks
    layers = int(b.get("n_encoder_layers") or 0) + int(b.get("n_decoder_layers") or 0) or int(b["n_layers"])
    scale = max(1.0, layers * int(b["d_model"]) * (4 * int(b["d_model"]) + 2 * int(b["d_ff"])) / NOMINAL_SIZE) ** 0.5
    return calibration_seconds({k: v if k == "data" else v * scale for k, v in NOMINAL.items()}, steps)


def run_seconds(cost: dict, steps: int, evals: int) -> float:
    return cost["overhead"] + steps * cost["step"] + evals * cost["check"]


def wall_time(exp: dict, cells: list[Cell], sources: list[SourceRun], cal: dict) -> dict:
    """Seconds by kind for the runs given (those left to do), one after another in one process,
    plus one data build per (task, seed). A run of a (task, arch) absent from ``cal`` is left out
    and counted in ``left_out``."""
    by_kind: dict[str, float] = {}
    evals = int(exp.get("evals", 4))
    left_out = 0
    for run in [*sources, *cells]:
        pairs = [(t, run.preset) for t in run.tasks] if isinstance(run, SourceRun) else [(run.target, run.arch)]
        if any(p not in cal for p in pairs):
            left_out += 1
            continue
        if isinstance(run, SourceRun):  # a joint source: each task's share of the steps at its cost
            s = sum(run_seconds(cal[p], run.steps, evals) for p in pairs)
        else:
            s = run_seconds(cal[pairs[0]], steps_of(exp, run), evals)
        by_kind[run.label] = by_kind.get(run.label, 0.0) + s
    builds = {(t, r.seed) for r in sources for t in r.tasks} | {(c.target, c.seed) for c in cells}
    data_cost = {}
    for (task, _), cost in cal.items():
        data_cost[task] = max(data_cost.get(task, 0.0), cost["data"])
    data = sum(data_cost[task] for task, _ in builds if task in data_cost)
    return {"by_kind": by_kind, "data": data, "total": sum(by_kind.values()) + data, "left_out": left_out}


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


def about(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 100 else f"about {hms(seconds)}"


def init_text(exp: dict, runner: Runner, cell: Cell) -> str:
    """A sequence-to-sequence target's run: its preset and where each side starts (other runs: nothing)."""
    if cell.side is None and (not cell.arch_is_preset or cell.arch == exp["preset"]):
        return ""
    return "  " + ", ".join([f"backbone {cell.arch}", *(f"{k} {v}" for k, v in runner.init_settings(cell).items())])


def dry_run(exp: dict, registry, out: Path, cells: list[Cell], sources: list[SourceRun], calibrate_steps: int = 20,
            recalibrate: bool = False, show_runs: bool = True, command: str | None = None) -> dict:
    """Print the plan and its estimate. Trains nothing but, with ``recalibrate`` (--calibrate), the
    calibration runs; without it the estimate uses stored calibrations only, and names ``command``
    (the dry run's own, with --calibrate) for those missing. Returns the figures."""
    startup = process_age()
    done_cells = {c for c in cells if cell_done(out, c)}
    done_sources = {s for s in sources if source_done(s.path(out))}
    print(f"transfer --dry-run ({exp.get('profile', 'custom')} profile): preset {exp['preset']}; "
          f"targets {', '.join(exp['targets'])}; sources {', '.join(exp['sources'])}; adapt {', '.join(exp['adapt'])}; "
          f"lrs {', '.join(f'{x:g}' for x in exp['lrs'])}; seeds {', '.join(map(str, exp['seeds']))}; output {out}")
    for name, why in (exp.get("left_out") or {}).items():
        print(f"  left out of 'all': {name} ({why})")
    if exp.get("seq2seq_targets"):
        print(f"  sequence-to-sequence targets {', '.join(exp['seq2seq_targets'])}: on {exp['seq2seq_preset']}; "
              f"side arms start {', '.join(exp['sides'])} from each source")
    for note in exp.get("notes") or ():
        print(f"  not planned: {note}")
    if show_runs:
        runner = Runner(exp, registry, out)
        for s in sources:
            print(f"  - source  {s.task:<14} seed {s.seed:<3} {s.steps:>7} steps  {'done' if s in done_sources else 'to do'}  "
                  f"{s.path(out)}")
        for c in cells:
            size = "" if c.size is None else f"n {c.size:<7}"
            print(f"  - target  {c.target:<14} <- {c.arm:<22} lr {c.lr:<8g} seed {c.seed:<3} {size}{steps_of(exp, c):>7} steps  "
                  f"{'done' if c in done_cells else 'to do'}{init_text(exp, runner, c)}")
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
    pairs = list(dict.fromkeys([(t, s.preset) for s in todo_sources for t in s.tasks] + [(c.target, c.arch) for c in todo_cells]))
    approximate: dict = {}
    guessed: dict = {}
    if recalibrate:
        start = time.time()
        cal = calibrate(exp, registry, out, pairs, calibrate_steps, recalibrate=True)
        print(f"calibration (measured in {time.time() - start:.0f} s, kept in {cache_path()}; "
              "seconds per step / per validation check / per run / per data build):")
    else:
        cal, approximate, guessed = lookup(exp, registry, out, pairs, calibrate_steps)
        print(f"calibration (from {cache_path()}; seconds per step / per validation check / per run / per data build):")
    missing = [p for p in pairs if p not in cal]
    figures["not_calibrated"] = missing
    command = command or f"suite transfer --profile {exp.get('profile', 'custom')} --dry-run --calibrate"
    for task, arch in pairs:
        c = cal.get((task, arch))
        if c is None:
            print(f"  {task:<14} {arch:<16} not calibrated: `{command}` measures it "
                  f"({about(guessed[(task, arch)])})")
            continue
        note = f"; {approximate[(task, arch)]}" if (task, arch) in approximate else ""
        print(f"  {task:<14} {arch:<16} {c['step']:.4f} / {c['check']:.2f} / {c['overhead']:.2f} / {c['data']:.2f}   "
              f"(measured {c.get('measured', '?')}, load average {c.get('load', float('nan')):.1f} "
              f"on {c.get('cores', '?')} cores{note})")
    if not cal:
        print(f"estimated wall time: not calibrated; `{command}` measures the {len(missing)} (task, architecture) "
              f"pairs in {about(sum(guessed.values()))}")
        return figures
    est = wall_time(exp, todo_cells, todo_sources, cal)
    est["startup"] = startup
    est["total"] += startup
    est["partial"] = bool(missing)
    est["approximate"] = list(approximate)
    figures["estimate"] = est
    partial = (f"   partial: leaves out {est['left_out']:,} of the {figures['todo']:,} runs to do, those of the "
               f"{len(missing)} (task, architecture) pairs not calibrated") if missing else ""
    if approximate:
        partial += f"   approximate for {len(approximate)} (task, architecture) pairs measured with other settings"
    print(f"estimated wall time of what is left, one run after another (--executor local): {hms(est['total'])}{partial}")
    for label, seconds in est["by_kind"].items():
        print(f"  {label:<26} {hms(seconds)}")
    print(f"  {'data builds':<26} {hms(est['data'])}   (calibrated tasks, once per seed, as their calibration measured it)")
    print(f"  {'start-up':<26} {hms(startup)}")
    print(f"  not included: {NOT_INCLUDED}")
    if executor_of(exp)[0] == "ray":
        slots = max(1, int((os.cpu_count() or 1) // max(exp["resources"]["cpus"], 1e-9)))
        print(f"with Ray (--executor {exp['executor']}), {slots} runs at once on this machine's {os.cpu_count()} cores: about "
              f"{hms((est['total'] - est['data']) / slots + est['data'])} if they do not slow each other down"
              f"{' (partial, as above)' if missing else ''}")
    return figures
