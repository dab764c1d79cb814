"""`suite uci`: seconds from process start to `uciok`, the number chess GUIs and adapters time
(PolyGlot sends an xboard client its features only after `uciok`, and python-chess's xboard client
waits 2 s for them). Target: under 0.5 s. The engine answers `uci` before it loads the model, so
no run is needed for this figure; with --run the time to `readyok` (the model loaded) and to
`bestmove` for `go movetime 200` are measured too. Printed alongside: what importing torch alone
takes, and Python with python-chess alone, on this machine at its present load.

Usage: python bench/bench_uci.py [--run RUN_DIR] [--repeat 5] [--target 0.5]"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = str(Path(sys.executable).parent / "suite")


def until(proc: subprocess.Popen, word: str) -> None:
    for line in proc.stdout:
        if line.split()[:1] == [word]:
            return
    raise SystemExit(f"suite uci ended before {word!r}: {proc.stderr.read().strip()[-300:]}")


def session(run_dir: str, load: bool) -> dict:
    """One engine process: seconds to uciok (from start), and with ``load`` to readyok and to bestmove."""
    times = {}
    start = time.perf_counter()
    proc = subprocess.Popen([SUITE, "uci", run_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    proc.stdin.write("uci\n")
    proc.stdin.flush()
    until(proc, "uciok")
    times["uciok"] = time.perf_counter() - start
    if load:
        proc.stdin.write("isready\n")
        proc.stdin.flush()
        until(proc, "readyok")
        times["readyok"] = time.perf_counter() - start
        go = time.perf_counter()
        proc.stdin.write("position startpos\ngo movetime 200\n")
        proc.stdin.flush()
        until(proc, "bestmove")
        times["bestmove"] = time.perf_counter() - go
    proc.stdin.write("quit\n")
    proc.stdin.close()
    proc.wait()
    return times


def python_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="a trained chess run: also time readyok and go movetime 200")
    ap.add_argument("--repeat", type=int, default=5, help="engine processes started (the median is reported)")
    ap.add_argument("--target", type=float, default=0.5, help="seconds to uciok")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-uci-") as tmp:
        run_dir = args.run or str(Path(tmp) / "no-run")  # uci is answered before the run is read
        sessions = [session(run_dir, load=bool(args.run)) for _ in range(args.repeat)]
    uciok = [s["uciok"] for s in sessions]
    print(f"uciok: median {statistics.median(uciok):.2f} s, max {max(uciok):.2f} s over {len(uciok)} starts "
          f"(target {args.target:g} s)")
    if args.run:
        print(f"readyok (model loaded): median {statistics.median(s['readyok'] for s in sessions):.2f} s from start; "
              f"go movetime 200: bestmove after median {statistics.median(s['bestmove'] for s in sessions) * 1000:.0f} ms")
    print(f"for comparison: python -c 'import torch' {python_seconds('import torch'):.2f} s, "
          f"python -c 'import chess' {python_seconds('import chess'):.2f} s")
    sys.exit(f"uciok over {args.target:g} s" if statistics.median(uciok) > args.target else 0)
