"""Threads: training tokens/s of the backbone at every thread count this process may use, beside
the count `suite train` picks by default (suite.machine). Target: the default within 10% of the
best. Counts alternate for `--rounds` rounds in one process and the best round of each counts.

Usage: python bench/bench_threads.py [--presets tiny,small] [--rounds 3]"""
import argparse
import sys
from pathlib import Path

import torch

from suite import machine

sys.path.insert(0, str(Path(__file__).parent))
from bench_backbone import bench  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    default = machine.default_threads({"devices": 1})
    cores = machine.available_cores()
    print(f"{cores} cores available, {machine.idle_cores()} idle at start; default {default} thread(s); batch 32 x 128, causal")
    for preset in args.presets.split(","):
        rate = {n: 0.0 for n in range(1, cores + 1)}
        for _ in range(args.rounds):
            for n in rate:
                torch.set_num_threads(n)
                rate[n] = max(rate[n], bench(preset, "causal", 32, 128, "cpu", steps=10))
        best = max(rate.values())
        cells = "  ".join(f"{n} thread(s) {r:9,.0f}" for n, r in rate.items())
        print(f"{preset:6s} {cells}   default/best {rate[default] / best:.3f}")
