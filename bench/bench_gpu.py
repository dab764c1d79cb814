"""The GPU path: training tokens/s and model FLOPs utilisation (MFU) of the `base` preset at
sequence 512 on one GPU, through `suite train`'s own Trainer (bf16-mixed, with and without
--compile). Target: >= 40% MFU on an H100. Prints a line and exits 0 where there is no GPU.

MFU = 6 N + 12 L d T FLOPs per token (PaLM's count: weights forward and backward, plus
attention) times tokens/s, over the GPU's dense bf16 peak (`--peak-tflops`, else a table).

Usage: python bench/bench_gpu.py [--preset base] [--seq 512] [--batch 32] [--steps 60]"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_lightning import lightning, setup  # noqa: E402

from suite.backbone import Backbone, BackboneConfig  # noqa: E402
from suite.train import quiet_lightning  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="base")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--peak-tflops", type=float)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no GPU on this machine; nothing measured")
        sys.exit(0)
    quiet_lightning()
    torch.set_float32_matmul_precision("high")
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops(name)
    task, tokenizer, cfg, batch = setup(args.preset, args.batch, args.seq)
    cfg["backbone"]["max_len"] = max(cfg["backbone"]["max_len"], args.seq)
    b = cfg["backbone"]
    n_params = sum(p.numel() for p in Backbone(BackboneConfig.from_dict(b)).parameters())
    flops_per_token = 6 * n_params + 12 * b["n_layers"] * b["d_model"] * args.seq
    print(f"{name}, preset {args.preset} ({n_params / 1e6:.1f}M backbone parameters), batch {args.batch} x {args.seq}")
    skip = 10
    for compile in (False, True):
        seconds = lightning(task, tokenizer, cfg, batch, args.steps, skip, compile=compile,
                            accelerator="gpu", devices=1, precision="bf16-mixed")
        rate = args.batch * args.seq * (args.steps - skip) / seconds
        mfu = f"{rate * flops_per_token / (peak * 1e12):.1%}" if peak else "n/a (give --peak-tflops)"
        print(f"bf16-mixed{' + compile' if compile else ''}: {rate:12,.0f} tokens/s   MFU {mfu}")
