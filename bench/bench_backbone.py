"""Backbone throughput: training tokens per second (forward + backward + AdamW step) per preset and
mask kind, on whatever device is available. Usage: python bench/bench_backbone.py [--presets tiny,small]"""
import argparse
import time

import torch

from suite.backbone import Backbone, BackboneConfig
from suite.config import shipped_presets


def bench(preset: str, mask: str, batch: int, seq: int, device: str, steps: int = 20) -> float:
    cfg = BackboneConfig.from_dict(shipped_presets()[preset])
    model = Backbone(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, seq, cfg.d_model, device=device)
    prefix = torch.full((batch,), seq // 2, device=device)
    for i in range(steps + 3):
        if i == 3:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        model(x, mask, prefix_len=prefix).square().mean().backward()
        opt.step()
        opt.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * seq * steps / (time.perf_counter() - start)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch} x {args.seq} tokens")
    for preset in args.presets.split(","):
        for mask in ("causal", "bidirectional", "prefix"):
            print(f"{preset:6s} {mask:13s} {bench(preset, mask, args.batch, args.seq, device):12,.0f} tokens/s")
