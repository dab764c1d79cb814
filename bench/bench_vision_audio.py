"""Do the vision and audio data pipelines keep the model busy?

For each task at its default settings this measures, in samples per second:
  tokeniser   the training input pipeline alone: vision = transforms.v2 augmentation + patches
              (the TrainStream that feeds training); audio = waveform -> log-mel -> patches
              (done once before training; also the cost of `suite predict` per clip), and the
              chord synthesiser that makes the waveforms
  train step  what one optimisation step consumes: forward, backward and AdamW on a batch
If the tokeniser is several times faster than the step, data loading is not the bottleneck.

    .venv/bin/python bench/bench_vision_audio.py [--threads N] [--steps N] [--preset tiny]
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import torch


def rate(fn, n_samples: int, repeat: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return n_samples * repeat / (time.perf_counter() - start)


def train_step_rate(task, cfg, batches, steps: int) -> float:
    from suite import train

    _, module = train.build(task, cfg)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()

    def step(batch):
        loss = module.objective.loss(module, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(batches[0])
    start = time.perf_counter()
    for batch in itertools.islice(itertools.cycle(batches), steps):
        step(batch)
    return steps * len(batches[0]["label"]) / (time.perf_counter() - start)


def bench_vision(registry, args) -> dict:
    from suite import config
    from suite.data import SuiteDataModule
    from suite.plugins.vision import TrainStream, build_augment, images_for

    task = registry.task("vision")
    cfg = config.resolve(task, overrides={"backbone.preset": args.preset}, presets=registry.all_presets())
    d, B = cfg["data"], cfg["data"]["batch_size"]
    tok = task.build_tokenizer(cfg)
    data = images_for(d, 0)
    stream = TrainStream(tok, data.train_images, data.train_labels, build_augment(d, d["dataset"]), d["augment_group"], 0)
    it = iter(stream)
    n = 4096
    aug_rate = rate(lambda: [next(it) for _ in range(n)], n, 3)
    per_image = TrainStream(tok, data.train_images, data.train_labels, build_augment(d, d["dataset"]), 1, 0)
    it1 = iter(per_image)
    per_image_rate = rate(lambda: [next(it1) for _ in range(1024)], 1024, 2)
    plain_rate = rate(lambda: tok.encode(data.train_images[:n]), n, 5)
    dm = SuiteDataModule(task, tok, cfg)
    dm.setup()
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(8)]
    return {
        "task": "vision", "preset": args.preset, "batch_size": B, "tokens": tok.grid[0] * tok.grid[1] + 1,
        "tokeniser_train_stream_samples_per_s": round(aug_rate),
        "tokeniser_train_stream_per_image_draws_samples_per_s": round(per_image_rate),
        "tokeniser_patches_only_samples_per_s": round(plain_rate),
        "train_step_samples_per_s": round(train_step_rate(task, cfg, batches, args.steps)),
    }


def bench_audio(registry, args) -> dict:
    from suite import config
    from suite.plugins.audio.synth import synthesise

    task = registry.task("audio")
    cfg = config.resolve(task, overrides={"backbone.preset": args.preset, "data.train_size": 512,
                                          "data.val_size": 64, "data.test_size": 64}, presets=registry.all_presets())
    B = cfg["data"]["batch_size"]
    tok = task.build_tokenizer(cfg)
    n = 512
    waves, _ = synthesise(n, tok.sample_rate, tok.clip_seconds, seed=0)
    synth_rate = rate(lambda: synthesise(n, tok.sample_rate, tok.clip_seconds, seed=1), n, 2)
    token_rate = rate(lambda: tok.encode(waves), n, 3)
    sets = task.build_data(tok, cfg)
    batches = [task.collate([sets["train"][i] for i in range(j * B, (j + 1) * B)]) for j in range(4)]
    return {
        "task": "audio", "preset": args.preset, "batch_size": B, "tokens": tok.grid[0] * tok.grid[1] + 1,
        "synthesis_samples_per_s": round(synth_rate),
        "tokeniser_log_mel_patches_samples_per_s": round(token_rate),
        "train_step_samples_per_s": round(train_step_rate(task, cfg, batches, args.steps)),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--steps", type=int, default=30, help="training steps timed per task")
    p.add_argument("--preset", default="tiny", help="backbone preset (the tasks' default is tiny)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from suite.registry import get_registry

    registry = get_registry()
    for result in (bench_vision(registry, args), bench_audio(registry, args)):
        result["threads"] = torch.get_num_threads()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
