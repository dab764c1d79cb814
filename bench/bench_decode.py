"""Decoding speed of an encoder-decoder preset: tokens per second of greedy generation with the
key-value cache (each new token through the decoder alone) and without it (the whole prefix read
again at every step), at output lengths 16 and 256. With the cache the cost of a token stays flat as
the output grows; without it, it grows with the output.

Usage: python bench/bench_decode.py [--preset transformer-small] [--batch 8] [--source 32] [--threads 2]
"""
import argparse
import time

import torch
from torch import nn

from suite.backbone import Backbone, BackboneConfig
from suite.config import shipped_presets
from suite.tasks.seq2seq import generate


class Model(nn.Module):
    """Embedding, the preset's encoder-decoder and an output layer: the surface generate() reads."""

    def __init__(self, cfg: BackboneConfig, vocab: int):
        super().__init__()
        self.backbone, self.embed, self.out = Backbone(cfg), nn.Embedding(vocab, cfg.d_model), nn.Linear(cfg.d_model, vocab)

    def encode(self, batch):
        return self.backbone.encode(self.embed(batch["source"])), None

    def decode(self, inputs, memory, memory_padding=None, *, padding=None, positions=None, cache=None):
        return self.out(self.backbone.decode(self.embed(inputs), memory, positions=positions, cache=cache))


def tokens_per_second(model, batch, length: int, cache: bool, device: str) -> float:
    start = torch.ones(batch["source"].shape[0], 1, dtype=torch.long, device=device)
    generate(model, batch, start, 4, eos=-1, cache=cache)  # warm up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = generate(model, batch, start, length, eos=-1, cache=cache)  # eos -1: never written, every step runs
    if device == "cuda":
        torch.cuda.synchronize()
    return out.numel() / (time.perf_counter() - t0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="transformer-small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--source", type=int, default=32, help="source tokens")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--lengths", default="16,256")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = BackboneConfig.from_dict({**shipped_presets()[args.preset], "dropout": 0.0})
    torch.manual_seed(0)
    model = Model(cfg, args.vocab).to(device).eval()
    batch = {"source": torch.randint(0, args.vocab, (args.batch, args.source), device=device)}
    print(f"{args.preset} on {device} ({torch.get_num_threads()} threads), batch {args.batch}, source {args.source} tokens, "
          f"greedy decoding")
    print(f"{'output length':>13} {'cache tok/s':>12} {'no cache tok/s':>15} {'speed-up':>9}")
    with torch.no_grad():
        for length in (int(n) for n in args.lengths.split(",")):
            with_cache = tokens_per_second(model, batch, length, True, device)
            without = tokens_per_second(model, batch, length, False, device)
            print(f"{length:>13} {with_cache:>12.0f} {without:>15.0f} {with_cache / without:>8.1f}x")
