"""Lightning's cost: the same model, batch and optimizer through the suite's training step (a
Lightning Trainer set up as `suite train` sets it up: logging, checkpoint callback, progress bar)
and through a plain PyTorch loop. Prints tokens/s of each and their ratio (target: >= 0.95).

The batch is made once and served again and again, so both measure the step, not the data.
Time is this process's CPU time (time.process_time) on one thread by default (`--threads`): on
a shared machine, other processes' work changes wall time a lot and CPU time little. The two
alternate `--rounds` times in one process and the best round of each counts.

Usage: python bench/bench_lightning.py [--presets tiny,small] [--steps 60] [--rounds 3]
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, IterableDataset

from suite import config, machine, registry
from suite.module import SuiteModule
from suite.train import make_trainer, quiet_lightning


class Same(IterableDataset):
    def __init__(self, batch, n):
        self.batch, self.n = batch, n

    def __iter__(self):
        return (self.batch for _ in range(self.n))

    def __len__(self):
        return self.n


class Clock(Callback):
    """CPU time from the start of step ``skip`` to the end of the last step."""

    def __init__(self, skip):
        self.skip, self.start, self.end = skip, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.skip:
            self.start = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.process_time()


def setup(preset: str, batch_size: int, seq: int):
    reg = registry.get_registry()
    task = reg.task("text")
    cfg = config.resolve(task, presets=reg.all_presets(), overrides={"backbone.preset": preset})
    tokenizer = task.build_tokenizer(cfg)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 259, (batch_size, seq + 1), generator=g)
    batch = {"inputs": ids[:, :-1], "targets": ids[:, 1:], "n_bytes": torch.full((batch_size,), seq)}
    return task, tokenizer, cfg, batch


def plain(task, tokenizer, cfg, batch, steps: int, skip: int) -> float:
    torch.manual_seed(0)
    model = SuiteModule(task, tokenizer, cfg)
    o = cfg["optim"]
    opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    model.train()
    for i in range(steps):
        if i == skip:
            start = time.process_time()
        loss = model.objective.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.process_time() - start


def lightning(task, tokenizer, cfg, batch, steps: int, skip: int, compile: bool = False, **trainer) -> float:
    """Seconds for steps ``skip`` to ``steps`` of ``suite train``'s Trainer; ``trainer``: extra Trainer settings."""
    torch.manual_seed(0)
    model = SuiteModule(task, tokenizer, cfg)
    if compile:
        model.backbone.compile()
    clock = Clock(skip)
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = {**cfg, "trainer": {**cfg["trainer"], "max_steps": steps, "val_check_interval": None,
                                      "limit_val_batches": 0, "accelerator": "cpu", **trainer},
                   "run": {**cfg["run"], "checkpoint_every": 10 ** 9}}
        trainer = make_trainer(run_cfg, Path(tmp), progress=True, extra_callbacks=[clock])
        trainer.fit(model, train_dataloaders=DataLoader(Same(batch, steps), batch_size=None))
    return clock.end - clock.start


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    quiet_lightning()
    print(machine.configure({"run": {"threads": args.threads}, "trainer": {"devices": 1}}),
          f"batch {args.batch} x {args.seq} tokens, CPU; tokens per CPU-second")
    skip = 10
    for preset in args.presets.split(","):
        task, tokenizer, cfg, batch = setup(preset, args.batch, args.seq)
        best = {"plain": float("inf"), "suite": float("inf")}
        for _ in range(args.rounds):
            best["plain"] = min(best["plain"], plain(task, tokenizer, cfg, batch, args.steps, skip))
            best["suite"] = min(best["suite"], lightning(task, tokenizer, cfg, batch, args.steps, skip))
        tokens = args.batch * args.seq * (args.steps - skip)
        rate = {k: tokens / v for k, v in best.items()}
        print(f"{preset:6s} plain loop {rate['plain']:10,.0f} tokens/s   suite (Lightning) {rate['suite']:10,.0f} tokens/s"
              f"   ratio {rate['suite'] / rate['plain']:.3f}")
