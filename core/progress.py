"""The progress of a run: TQDM's redrawn bar on a terminal, plain lines when the output is a file.

A redrawn bar written to a file (``suite train ... > train.log``, a batch job's log) leaves every
redraw behind as a line: two every 10 steps. When stdout is not a terminal the Trainer gets
:class:`PlainProgress` instead (the rule of :class:`Lines`): one line each ``every_percent`` of the steps or each
``every_seconds``, whichever comes first (and at the last step), and one line with the metrics
of each validation check::

    step 40/200 (20%), 0:00:03 elapsed, 13.1 steps/s, 0:00:12 left, train/loss=1.640
    validation at step 100: val/exact_match=0.000, val/loss=1.380, val/token_accuracy=0.520

Counted work outside training (the transfer matrix's runs, chess data generation, games) goes
through :func:`counter`: rich's bar on a terminal, :class:`PlainCounter`'s lines by the same rule
otherwise::

    transfer: 12/48 (25%), 0:04:10 elapsed, 0:12:30 left
"""
from __future__ import annotations

import math
import sys
import time

from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar


def progress_bar(refresh_rate: int = 10) -> ProgressBar:
    """The Trainer's progress callback: TQDM redrawn every ``refresh_rate`` steps on a terminal,
    :class:`PlainProgress` when stdout is not one."""
    return TQDMProgressBar(refresh_rate=refresh_rate) if isatty() else PlainProgress()


def isatty() -> bool:
    check = getattr(sys.stdout, "isatty", None)
    return check is not None and check()


def counter(enabled: bool = True):
    """A counter of finished work with rich.progress.Progress's interface (``with``, ``add_task``,
    ``advance``, ``update``): rich's bar on a terminal, :class:`PlainCounter` when stdout is not one."""
    if enabled and not isatty():
        return PlainCounter()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("left"), TimeRemainingColumn(), disable=not enabled)


class PlainCounter:
    """Counted work as plain lines, by the rule of :class:`Lines` (every 5% or 30 s, and the end)."""

    def __init__(self, every_percent: float = 5.0, every_seconds: float = 30.0, clock=time.monotonic, stream=None):
        self.make_rule = lambda: Lines(every_percent, every_seconds, clock, stream)
        self.tasks: list[dict] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        rule = self.make_rule()
        rule.start(0, math.inf if total is None else total)
        self.tasks.append({"description": description, "done": 0, "rule": rule})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, advance: float = 0, completed: float | None = None, description: str | None = None, **_) -> None:
        t = self.tasks[task]
        t["description"] = description or t["description"]
        t["done"] = completed if completed is not None else t["done"] + advance
        rule, done = t["rule"], int(t["done"])
        if rule.due(done):
            elapsed = rule.elapsed()
            parts = [f"{t['description']}: {done}/{int(rule.total)} ({100 * done / rule.total:.0f}%)"
                     if math.isfinite(rule.total) else f"{t['description']}: {done}", f"{hms(elapsed)} elapsed"]
            if math.isfinite(rule.total) and 0 < done < rule.total:
                parts.append(f"{hms(elapsed * (rule.total - done) / done)} left")
            rule.write(", ".join(parts))
            rule.mark(done)


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def number(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)  # as TQDM's postfix shows them


class Lines:
    """When to write a line of progress, and writing it: a pure rule over (step, the clock).

    ``clock``: seconds, monotonic (a fake one in tests); ``stream``: where lines go (default: the
    sys.stdout of the moment, so ``contextlib.redirect_stdout`` applies).
    """

    def __init__(self, every_percent: float = 5.0, every_seconds: float = 30.0, clock=time.monotonic, stream=None):
        self.every_percent, self.every_seconds = float(every_percent), float(every_seconds)
        self.clock, self.stream = clock, stream
        self.total: float = math.inf
        self._start_step = self._last_step = 0
        self._start_time = self._last_time = 0.0
        self._last_bucket = 0

    def _bucket(self, step: int) -> int:
        if not math.isfinite(self.total) or self.total <= 0:
            return 0
        return math.floor(step * 100 / (self.total * self.every_percent) + 1e-9)

    def start(self, step: int, total: float) -> None:
        """The work starts (or resumes) at ``step`` of ``total`` (``inf``: unknown)."""
        self.total = float(total)
        self._start_step = self._last_step = step
        self._start_time = self._last_time = self.clock()
        self._last_bucket = self._bucket(step)

    def due(self, step: int) -> bool:
        """A line is due at ``step``: it crossed another ``every_percent`` of the total, or is the
        last step, or ``every_seconds`` have passed since the last line. Never twice for one step."""
        if step == self._last_step:
            return False
        if step >= self.total or self._bucket(step) > self._last_bucket:
            return True
        return self.clock() - self._last_time >= self.every_seconds

    def mark(self, step: int) -> None:
        """A line was written at ``step``."""
        self._last_step, self._last_time, self._last_bucket = step, self.clock(), self._bucket(step)

    def elapsed(self) -> float:
        return self.clock() - self._start_time

    def write(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)


class PlainProgress(Lines, ProgressBar):
    """Training progress as plain lines, for output that is not a terminal (the rule of :class:`Lines`)."""

    def __init__(self, every_percent: float = 5.0, every_seconds: float = 30.0, clock=time.monotonic, stream=None):
        ProgressBar.__init__(self)
        Lines.__init__(self, every_percent, every_seconds, clock, stream)
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def line(self, step: int, metrics: dict) -> str:
        elapsed = self.elapsed()
        rate = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
        parts = [f"step {step}/{int(self.total)} ({100 * step / self.total:.0f}%)" if math.isfinite(self.total)
                 else f"step {step}", f"{hms(elapsed)} elapsed", f"{rate:.3g} steps/s"]
        if math.isfinite(self.total) and rate > 0:
            parts.append(f"{hms((self.total - step) / rate)} left")
        parts += [f"{k}={number(v)}" for k, v in metrics.items()]
        return ", ".join(parts)

    # -- Lightning's hooks -----------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        self.start(trainer.global_step, trainer.estimated_stepping_batches)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.enabled and self.due(step):
            shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items()
                     if k != "v_num" and not k.startswith("val")}
            self.write(self.line(step, shown))
            self.mark(step)

    def on_validation_end(self, trainer, pl_module):
        if not self.enabled or trainer.sanity_checking:
            return
        shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k.startswith("val")}
        if shown:
            self.write(f"validation at step {trainer.global_step}: " + ", ".join(f"{k}={number(v)}" for k, v in shown.items()))
