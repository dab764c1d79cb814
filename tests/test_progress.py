"""Progress written to a file: plain lines, one every 5% of the steps or every 30 seconds, not a
redrawn bar; on a terminal, TQDM's bar."""
import io
import math
import re

from pytorch_lightning.callbacks import TQDMProgressBar

from suite import progress
from suite.progress import PlainProgress

from conftest import metrics, run_dir_from, run_suite

LINE = re.compile(r"step (\d+)/(\d+) \((\d+)%\), (\d+):(\d\d):(\d\d) elapsed, [\d.]+ steps/s, \d+:\d\d:\d\d left, "
                  r"train/loss=\d+\.\d{3}")


class Clock:
    """A fake monotonic clock: the test moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def lines_written(bar: PlainProgress, clock: Clock, steps, seconds_a_step: float) -> list[int]:
    """Steps the bar writes a line at, stepping ``steps`` with the clock moving ``seconds_a_step`` each."""
    written = []
    for step in steps:
        clock.now += seconds_a_step
        if bar.due(step):
            written.append(step)
            bar.mark(step)
    return written


def test_a_line_every_five_percent_or_thirty_seconds_whichever_comes_first():
    clock = Clock()
    bar = PlainProgress(every_percent=5, every_seconds=30, clock=clock)
    bar.start(0, 1000)
    # fast steps (1,000 in 10 s): a line at each 5%, 20 in all, the last at the last step
    assert lines_written(bar, clock, range(1, 1001), 0.01) == list(range(50, 1001, 50))
    # slow steps (1 s each): 5% is 50 s, so a line also comes 30 s after the last one
    bar.start(0, 1000)
    assert lines_written(bar, clock, range(1, 201), 1.0) == [30, 50, 80, 100, 130, 150, 180, 200]
    # never twice for one step (gradient accumulation calls the hook per batch, not per step)
    clock.now += 100
    assert not bar.due(200)
    # a resumed run counts from where it resumes; an unknown total is the clock alone
    bar.start(500, 1000)
    assert lines_written(bar, clock, range(501, 600), 0.1) == [550]
    bar.start(0, math.inf)
    assert lines_written(bar, clock, range(1, 100), 1.0) == [30, 60, 90]


def test_a_line_says_step_percent_elapsed_rate_and_the_loss():
    clock, out = Clock(), io.StringIO()
    bar = PlainProgress(clock=clock, stream=out)
    bar.start(0, 200)
    clock.now = 5.0
    bar.write(bar.line(50, {"train/loss": 1.23456}))
    assert out.getvalue() == "step 50/200 (25%), 0:00:05 elapsed, 10 steps/s, 0:00:15 left, train/loss=1.235\n"
    assert LINE.fullmatch(out.getvalue().strip())


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_is_tqdm_on_a_terminal_and_plain_lines_otherwise(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    assert isinstance(progress.progress_bar(), TQDMProgressBar)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(progress.progress_bar(), PlainProgress)


def test_counted_work_is_rich_on_a_terminal_and_plain_lines_by_the_same_rule_otherwise(monkeypatch):
    from rich.progress import Progress

    monkeypatch.setattr("sys.stdout", Terminal())
    assert isinstance(progress.counter(), Progress)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(progress.counter(), progress.PlainCounter)
    clock, out = Clock(), io.StringIO()
    with progress.PlainCounter(clock=clock, stream=out) as bar:
        job = bar.add_task("transfer", total=40)
        for i in range(40):
            clock.now += 1.0
            bar.update(job, advance=1, description=f"cell {i}") if i % 2 else bar.advance(job)
    lines = out.getvalue().splitlines()
    assert lines[0] == "cell 1: 2/40 (5%), 0:00:02 elapsed, 0:00:38 left"
    assert lines[1] == "cell 3: 4/40 (10%), 0:00:04 elapsed, 0:00:36 left"
    assert len(lines) == 20 and lines[-1] == "cell 39: 40/40 (100%), 0:00:40 elapsed"


def test_training_into_a_pipe_writes_a_bounded_number_of_plain_lines(tmp_path):
    proc = run_suite("train", "--task", "arithmetic", "--backbone.preset", "tiny", "--trainer.max_steps", 200,
                     "--trainer.val_check_interval", 100, "--data.val_size", 64, "--data.test_size", 64,
                     "--threads", 1, "--run.root", tmp_path)  # progress on, stdout a pipe
    out = proc.stdout
    assert "\r" not in out + proc.stderr and "it/s" not in out + proc.stderr  # no redrawn TQDM bar
    found = [LINE.fullmatch(l) for l in out.splitlines() if l.startswith("step ")]
    assert found and all(found), out
    steps = [int(m[1]) for m in found]
    assert {int(m[2]) for m in found} == {200} and [int(m[3]) for m in found] == [round(s / 2) for s in steps]
    assert steps == sorted(set(steps)) and steps[-1] == 200, steps  # increasing, ending at the total
    elapsed = [int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6]) for m in found]
    assert elapsed == sorted(elapsed)
    # one line at each 5% (20), and at most one more for each 30 s that training took
    seconds = metrics(run_dir_from(out))["train_seconds"]
    assert set(range(10, 201, 10)) <= set(steps) and len(steps) <= 20 + seconds // 30 + 1, (steps, seconds)
    # the validation checks, one line each, with their metrics
    checks = [l for l in out.splitlines() if l.startswith("validation at step")]
    assert [l.split(":")[0] for l in checks] == ["validation at step 100", "validation at step 200"], out
    assert all(re.search(r"val/loss=\d+\.\d{3}", l) and "val/exact_match=" in l for l in checks), checks
