"""`suite transfer --executor ray` on a local Ray with this machine's CPUs (2 here): a small matrix
survives a killed worker, is interrupted, and the same command finishes it without redoing a cell."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SUITE, run_suite
from test_example_plugin import installed  # noqa: F401  (the example plugin gives a second cheap task)
from test_transfer import MATRIX, cells

pytest.importorskip("ray", reason="the `ray` extra (pip install 'suite[ray]'; `make test` installs it)")

RAY = [*MATRIX, "--seeds", "0", "--executor", "ray", "--resources.cpus", "1"]  # one seed: 4 cells, 1 source


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every process below ``pid``."""
    parent, cmd = {}, {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = {}, [pid]
    while frontier:
        here = frontier.pop()
        for child, up in parent.items():
            if up == here and child not in found:
                found[child] = cmd.get(child, "")
                frontier.append(child)
    return found


def default_sigint():
    """In the driver, before it starts: SIGINT as Python expects it. A job a non-interactive shell
    starts in the background (`make test &`, nohup) has SIGINT ignored, the child inherits that
    through exec, and Python then installs no KeyboardInterrupt handler: the interrupt would be a no-op."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGINT (Python's KeyboardInterrupt), from /proc."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    return bool(int(fields["SigCgt"], 16) & (1 << (signal.SIGINT - 1)))


def test_ray_matrix_survives_a_killed_worker_and_resumes_without_redoing_cells(installed, tmp_path):
    out = tmp_path / "matrix"
    env = {**os.environ, **installed, "OMP_NUM_THREADS": "1"}
    start = time.time()
    driver = subprocess.Popen([SUITE, *map(str, RAY), "--out", str(out)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    killed_worker = None
    try:
        deadline = time.time() + 240
        # 1. a worker dies in the middle of a target run: Ray runs that cell again
        while time.time() < deadline and killed_worker is None and driver.poll() is None and not cells(out):
            running = [p for p, c in descendants(driver.pid).items() if c.startswith("ray::_ray_cell")]
            if running:
                os.kill(running[0], signal.SIGKILL)
                killed_worker = running[0]
            time.sleep(0.05)
        assert killed_worker is not None, "no Ray worker was seen running a cell before the first cell was done"
        # 2. the driver is interrupted as soon as the first cell is on disk. 3 cells are left and at
        # most 2 run at a time, so one of them has not started (or has just started): the matrix can
        # only finish if Ray outlives the interrupt by a whole run, not in the second (ray.wait's
        # timeout) that the driver takes to notice it and shut Ray down. (Interrupting at 2 of 4
        # cells raced: a warm worker's last cell can land within a second of the second one.)
        while time.time() < deadline and not cells(out) and driver.poll() is None:
            time.sleep(0.05)
        assert driver.poll() is None, "the matrix finished before the test could interrupt it"
        assert cells(out), "no cell was finished within 240 s"
        assert catches_sigint(driver.pid), "the driver ignores SIGINT: Ctrl-C would not stop it"
        driver.send_signal(signal.SIGINT)
        interrupted_at = len(cells(out))
        output = driver.communicate(timeout=120)[0]
    finally:
        if driver.poll() is None:
            driver.kill()
    if driver.returncode == 0:
        pytest.fail(f"the interrupt (sent with {interrupted_at} of 4 cells on disk) did not stop the matrix: it "
                    f"finished all {len(cells(out))} cells and exited 0\n{output}")
    assert driver.returncode == 130 and "suite: interrupted" in output, output
    finished = cells(out)
    assert 1 <= len(finished) < 4, f"{len(finished)} of 4 cells done when the interrupted driver exited\n{output}"
    sources = {p: p.stat().st_mtime_ns for p in (out / "sources").rglob("metrics.json")}
    rerun = run_suite(*RAY, "--out", out, env={**installed, "OMP_NUM_THREADS": "1"})
    assert f"{len(finished)} already finished, {4 - len(finished)} to go" in rerun.stdout
    for name, mtime in finished.items():
        assert cells(out)[name] == mtime  # not redone
    for path, mtime in sources.items():
        assert path.stat().st_mtime_ns == mtime  # a finished source is shared, not trained again
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 4 and len(cells(out)) == 4
    # the source was pretrained once and reused by every cell that starts from it
    assert [p.name for p in (out / "sources" / "palindrome").iterdir()] == ["palindrome-tiny-6steps-s0"]
    inits = {r["config"]["init"]["from"] for r in data["runs"] if r["source"] == "palindrome"}
    assert inits == {str(out / "sources" / "palindrome" / "palindrome-tiny-6steps-s0")}
    print(f"ray matrix: {interrupted_at} cell(s) on disk at the interrupt, {len(finished)} when the driver exited; "
          f"killed, resumed and finished in {time.time() - start:.0f} s")


def test_ray_asks_for_more_than_the_cluster_has(installed, tmp_path):
    proc = run_suite(*MATRIX, "--executor", "ray", "--resources.cpus", "1000", "--out", tmp_path, env=installed, check=False)
    assert proc.returncode == 2 and "a run asks for 1000 CPUs" in proc.stderr and "the Ray cluster has" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
