"""Runs that scale out: DDP on CPU, the LR schedule, atomic checkpoints (kill -9 and resume for
every task: test_resume.py), non-finite losses, threads and matmul precision, data prepared once."""
import json
import math
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from safetensors.torch import load_file

import suite
from suite import config, machine, registry
from suite.checkpoints import AtomicCheckpointIO
from suite.data import SuiteDataModule
from suite.module import SuiteModule

from conftest import TINY, metrics, run_dir_from, run_suite, suite_main

HELPERS = Path(__file__).parent / "helpers"


# -- DDP -----------------------------------------------------------------------------------------
def test_ddp_on_two_cpu_processes_writes_one_run_and_splits_the_data(tmp_path):
    args = [sys.executable, HELPERS / "record_samples.py", tmp_path, "train", "--task", "vision", *TINY,
            "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", 2,
            "--trainer.max_steps", 6, "--trainer.val_check_interval", 3, "--data.batch_size", 32,
            "--run.root", tmp_path / "runs"]
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = list((tmp_path / "runs" / "vision").iterdir())
    assert len(runs) == 1, runs  # rank 1 wrote no directory of its own
    m = metrics(runs[0])
    assert m["world_size"] == 2 and m["step"] == 6 and [h["step"] for h in m["history"]] == [3, 6]
    test_count = sum(map(sum, json.loads((runs[0] / "test_confusion_matrix.json").read_text())["rows_true_cols_predicted"]))
    assert test_count == 359  # every test image once: no sample repeated to even out the ranks
    seen = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 6 * 32
    assert not set(seen[0]) & set(seen[1])  # the ranks trained on different images


# -- the schedule --------------------------------------------------------------------------------
class LearningRates(Callback):
    def __init__(self):
        self.lrs = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("trainer_cfg, steps", [
    ({"max_steps": 20}, 20),
    ({"max_steps": -1, "max_epochs": 2}, 20),  # 10 batches an epoch
    ({"max_steps": -1, "max_epochs": 2, "accumulate_grad_batches": 2}, 10),
])
def test_the_schedule_spans_the_optimizer_steps_the_trainer_will_take(trainer_cfg, steps):
    reg = registry.get_registry()
    task = reg.task("arithmetic")
    cfg = config.resolve(task, presets=reg.all_presets(), overrides={
        "backbone.preset": "tiny", "data.epoch_size": 640, "data.batch_size": 64, "optim.warmup_steps": 4,
        "optim.lr": 1e-3, "optim.min_lr_ratio": 0.1, "data.val_size": 8, "data.test_size": 8})
    lrs = LearningRates()
    tokenizer = task.build_tokenizer(cfg)
    trainer = pl.Trainer(**trainer_cfg, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[lrs])
    trainer.fit(SuiteModule(task, tokenizer, cfg), datamodule=SuiteDataModule(task, tokenizer, cfg))
    assert len(lrs.lrs) == steps
    assert lrs.lrs[0] == pytest.approx(1e-3 / 4)  # the first warm-up step
    assert lrs.lrs[3] == pytest.approx(1e-3)  # the end of warm-up
    assert lrs.lrs[-1] == pytest.approx(1e-4)  # the floor, reached at the last step
    assert all(a >= b for a, b in zip(lrs.lrs[3:], lrs.lrs[4:]))


# -- checkpoints (kill -9 and resume for every task: test_resume.py) ------------------------------
def test_a_checkpoint_save_that_dies_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def dies_while_writing(checkpoint, filepath):
        Path(filepath).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is gone mid-write

    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", dies_while_writing)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1


# -- non-finite values -----------------------------------------------------------------------------
class Patches(suite.Stream):
    """Random patches labelled by the sign of their sum; NaN from sample ``bad_from`` of the epoch on."""

    shuffle = False

    def __init__(self, n, bad_from, seed):
        super().__init__(seed)
        self.n, self.bad_from = n, bad_from

    def size(self):
        return self.n

    def samples(self, indices, generator):
        x = torch.randn(len(indices), 4, 8, generator=generator)
        x[indices >= self.bad_from] = float("nan")
        return [{"inputs": xi, "label": int(xi.sum() > 0)} for xi in x]


class NanTask(suite.Task):
    name = "nan-task"
    domain = "test"
    objective = suite.Classification
    tokenizer_class = suite.CharTokenizer
    defaults = {"model": {}, "data": {"bad_from": 10 ** 9, "eval_nan": False}}

    def build_tokenizer(self, cfg):
        return suite.CharTokenizer(alphabet="01")

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.PatchAdapter(8, d_model, (1, 4))

    def build_head(self, tokenizer, d_model, cfg):
        return suite.ClassifierHead(d_model, 2)

    def classes(self, tokenizer):
        return ["neg", "pos"]

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], int(cfg["seed"])
        evaluation = Patches(64, 32 if d["eval_nan"] else 10 ** 9, seed + 1).configure(64)  # half of it NaN
        return {"train": Patches(10 ** 6, int(d["bad_from"]), seed), "val": list(evaluation), "test": list(evaluation)}


class NanPlugin:
    @suite.hookimpl
    def suite_register_tasks(self, register):
        register(NanTask())


@pytest.fixture
def nan_registry():
    reg = registry.reset_registry(autoload=False)
    reg.register(NanPlugin(), "nan-plugin")
    yield reg
    registry.reset_registry()


def test_a_nan_loss_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(nan_registry, tmp_path, capsys):
    code, _, err = suite_main(capsys, "train", "--task", "nan-task", *TINY, "--data.bad_from", 4 * 16,
                              "--data.batch_size", 16, "--trainer.max_steps", 20, "--trainer.val_check_interval", 10,
                              "--run.checkpoint_every", 2, "--run.root", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "task nan-task: the training loss is nan at step 4" in err and "last.ckpt of step 4 is kept" in err
    run = next((tmp_path / "nan-task").iterdir())
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert "training loss is nan" in (run / "error.txt").read_text()


def test_a_nan_metric_is_reported_not_dropped(nan_registry, tmp_path, capsys):
    code, out, _ = suite_main(capsys, "train", "--task", "nan-task", *TINY, "--data.eval_nan", "true",
                              "--trainer.max_steps", 4, "--trainer.val_check_interval", 4, "--run.root", tmp_path)
    assert code == 0
    m = metrics(run_dir_from(out))
    assert math.isnan(m["splits"]["test"]["loss"]) and math.isnan(m["history"][-1]["loss"])
    assert "nan" in out.split("run directory")[-2]  # the printed table shows it


# -- machine settings ------------------------------------------------------------------------------
def test_threads_default_to_the_idle_cores_per_process_and_follow_the_setting():
    cores = machine.idle_cores()
    assert 1 <= cores <= machine.available_cores()
    machine.configure({"run": {}, "trainer": {"devices": 1}})
    assert torch.get_num_threads() == cores
    machine.configure({"run": {}, "trainer": {"devices": 2, "accelerator": "cpu"}})
    assert torch.get_num_threads() == max(1, cores // 2)
    assert "threads 1 (set)" in machine.configure({"run": {"threads": 1}, "trainer": {}})
    assert torch.get_num_threads() == 1


def test_busy_cores_come_from_cpu_time_now_not_the_trailing_load_average(monkeypatch):
    samples = iter([(1000, 4000), (1010, 4040)])  # 40 jiffies passed, 10 of them idle: 3/4 busy
    monkeypatch.setattr(machine, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (2.0, 2.0, 2.0))  # finished work still in it
    assert machine.busy_cores(window=0) == pytest.approx(1.5)
    monkeypatch.setattr(machine, "_cpu_times", lambda: (_ for _ in ()).throw(OSError("no /proc")))
    assert machine.busy_cores(window=0) == 2.0  # no /proc/stat: the load average


def test_tf32_is_off_unless_asked_for(monkeypatch):
    from suite.train import quiet_lightning

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    quiet_lightning()
    line = machine.configure({"run": {}, "trainer": {}})
    assert torch.get_float32_matmul_precision() == "highest" and "matmul precision highest" in line
    machine.configure({"run": {"matmul_precision": "high"}, "trainer": {}})
    assert torch.get_float32_matmul_precision() == "high"
    torch.set_float32_matmul_precision("highest")


def test_the_run_prints_its_threads_and_precision(tmp_path):
    out = run_suite("train", "--task", "arithmetic", *TINY, "--threads", 1, "--trainer.max_steps", 2,
                    "--trainer.val_check_interval", 2, "--data.val_size", 8, "--data.test_size", 8,
                    "--trainer.precision", "bf16-mixed", "--run.root", tmp_path).stdout
    assert "precision bf16-mixed, threads 1 (set), float32 matmul precision highest" in out
    assert metrics(run_dir_from(out))["step"] == 2


def test_compile_wraps_the_backbone_and_keeps_its_weight_names(tmp_path):
    # "eager": TorchDynamo traces the backbone without generating code, so the test stays quick;
    # --compile alone uses inductor.
    out = run_suite("train", "--task", "vision", *TINY, "--run.compile", "eager", "--trainer.max_steps", 3,
                    "--trainer.val_check_interval", 3, "--run.root", tmp_path).stdout
    assert "torch.compile: the backbone, backend eager" in out
    run = run_dir_from(out)
    assert all(not k.startswith("_orig_mod") for k in load_file(run / "weights" / "backbone.safetensors"))
    assert metrics(run)["splits"]["test"]["accuracy"] > 0


# -- data prepared once ----------------------------------------------------------------------------
class SlowCache(suite.Task):
    name = "slow-cache"

    def prepare_data(self, cfg):
        log = Path(cfg["log"])
        with log.open("a") as f:
            f.write(f"start {time.time()}\n")
        time.sleep(0.5)
        with log.open("a") as f:
            f.write(f"end {time.time()}\n")


def prepare_in_a_process(log):
    from suite.cache import prepare

    prepare(SlowCache(), {"log": log})


def test_two_processes_never_prepare_one_task_at_once(tmp_path):
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=prepare_in_a_process, args=(str(log),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["start", "end", "start", "end"]


def test_a_run_that_fails_while_building_its_data_leaves_no_directory(tmp_path, capsys):
    code, _, err = suite_main(capsys, "train", "--task", "arithmetic", *TINY, "--data.ops", "/", "--run.root", tmp_path)
    assert code == 2 and "data.ops must be made of" in err
    assert not any((tmp_path / "arithmetic").iterdir()) if (tmp_path / "arithmetic").exists() else True


def test_the_moving_average_of_the_weights_is_what_a_run_saves_and_evaluates(tmp_path, capsys):
    base = ["train", "--task", "vision", *TINY, "--trainer.max_steps", 20, "--trainer.val_check_interval", 20,
            "--data.batch_size", 32, "--run.root", tmp_path]
    runs = {}
    for name, ema in (("plain", []), ("nearly-plain", ["--optim.ema_decay", 1e-9]), ("ema", ["--optim.ema_decay", 0.5, "--optim.ema_from", 10]),
                      ("too-short", ["--optim.ema_decay", 0.5, "--optim.ema_from", 50])):
        code, out, err = suite_main(capsys, *base, *ema, "--run.name", name)
        assert code == 0, err
        runs[name] = run_dir_from(out)
    w = {name: load_file(run / "weights" / "backbone.safetensors") for name, run in runs.items()}
    assert all(torch.allclose(w["plain"][k], w["nearly-plain"][k], atol=1e-6) for k in w["plain"])  # decay ~0: the last weights
    assert not all(torch.allclose(w["plain"][k], w["ema"][k], atol=1e-4) for k in w["plain"])  # an average of the last 10 steps
    assert metrics(runs["ema"])["splits"]["test"] != metrics(runs["plain"])["splits"]["test"]
    # A run that ends before the average starts keeps its own weights, not the untrained model's.
    assert all(torch.allclose(w["plain"][k], w["too-short"][k], atol=1e-6) for k in w["plain"])
    assert metrics(runs["too-short"])["splits"]["test"] == pytest.approx(metrics(runs["plain"])["splits"]["test"])
