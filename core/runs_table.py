"""`suite runs`: the run directories under a root as a table, newest first.

A run directory is ``<root>/<task>/<name>/`` with a config.yaml; its metrics.json (written when
the run finished) gives the steps, the training time and the primary metric on every split.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import SuiteError

COLUMNS = ("run", "task", "date", "steps", "time", "metric", "val", "test", "other tests")


def find_runs(root: Path, task: str | None = None) -> list[Path]:
    """Run directories under ``root`` (of ``task`` only, if given), newest first."""
    root = Path(root)
    if not root.is_dir():
        raise SuiteError(f"{root}: no such directory (give the runs' root with --root)")
    pattern = f"{task}/*/config.yaml" if task else "*/*/config.yaml"
    found = [p.parent for p in root.glob(pattern)]
    return sorted(found, key=lambda p: (p / "config.yaml").stat().st_mtime, reverse=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def row(run: Path, root: Path) -> dict[str, str]:
    """One table row: what metrics.json says, or why there is none."""
    out = {"run": str(run.relative_to(root)), "task": run.parent.name,
           "date": time.strftime("%Y-%m-%d %H:%M", time.localtime((run / "config.yaml").stat().st_mtime))}
    try:
        m = json.loads((run / "metrics.json").read_text())
    except FileNotFoundError:
        out["time"] = "failed" if (run / "error.txt").is_file() else "unfinished"
        return out
    except ValueError:
        out["time"] = "metrics.json unreadable"
        return out
    primary, splits = m.get("primary", ""), m.get("splits", {})
    out.update(task=m.get("task", out["task"]), steps=str(m.get("step", "")), time=_duration(m.get("train_seconds", 0)),
               metric=primary, val=_number(splits.get("val", {}).get(primary)),
               test=_number(splits.get("test", {}).get(primary)))
    out["other tests"] = " ".join(f"{s}={_number(v.get(primary))}" for s, v in splits.items()
                                  if s.startswith("test_") and primary in v)
    if "tasks" in m:  # a joint run: each task's primary metric
        per_task = m["tasks"].items()
        out.update(metric="per task", **{split: " ".join(f"{n}={_number(t['splits'].get(split, {}).get(t['primary']))}"
                                                         for n, t in per_task) for split in ("val", "test")})
    return out


def table(root: Path, task: str | None = None) -> str:
    """The runs under ``root`` as aligned text, newest first."""
    root = Path(root)
    runs = find_runs(root, task)
    if not runs:
        return f"no runs under {root}" + (f" for task {task}" if task else "")
    rows = [row(r, root) for r in runs]
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(r.get(c, "").ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)
