"""Dry runs: the wall time of `suite transfer --profile P --dry-run` for every shipped profile, each
in its own process (start-up included), with the user's calibrations or none. Target: under 30 s
each on 2 cores, training nothing (the output directory stays empty).

Usage: python bench/bench_dryrun.py [--empty-cache] [--limit 30]"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suite import transfer

SUITE = str(Path(sys.executable).parent / "suite")


def dry_run(profile: str, out: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([SUITE, "transfer", "--profile", profile, "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def estimate_of(stdout: str) -> str:
    found = re.search(r"\(--executor local\): (.+?)(   .*)?$", stdout, re.M)
    if found:
        notes = [word for word in ("partial", "approximate") if word in (found.group(2) or "")]
        return found.group(1) + (f" ({', '.join(notes)})" if notes else "")
    return "not calibrated" if "estimated wall time: not calibrated" in stdout else "?"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--empty-cache", action="store_true", help="dry-run with no stored calibration")
    ap.add_argument("--limit", type=float, default=30.0, help="seconds a dry run may take")
    args = ap.parse_args()
    slow = []
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        env = {**os.environ, **({"XDG_CACHE_HOME": str(Path(tmp) / "cache")} if args.empty_cache else {})}
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; calibrations: "
              f"{'none' if args.empty_cache else transfer.estimate.cache_path()}")
        print(f"{'profile':<12} {'wall s':>7}  {'runs':>7}  estimate")
        for profile in transfer.profiles():
            out = Path(tmp) / profile
            seconds, proc = dry_run(profile, out, env)
            runs = re.search(r"([\d,]+) runs +[\d,]+ steps +\(", proc.stdout)
            status = estimate_of(proc.stdout) if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
            if out.exists() and any(out.iterdir()):
                status += f"; wrote {', '.join(p.name for p in out.iterdir())}"
            print(f"{profile:<12} {seconds:7.1f}  {runs.group(1) if runs else '?':>7}  {status}", flush=True)
            if proc.returncode != 0 or seconds > args.limit or (out.exists() and any(out.iterdir())):
                slow.append(profile)
    sys.exit(f"over {args.limit:g} s, failed or trained: {', '.join(slow)}" if slow else 0)
