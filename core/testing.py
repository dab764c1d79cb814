"""What a plugin's tests need: check a task's batches, round-trip its tokenizer, train it a few
steps on the tiny preset (a sequence-to-sequence task: transformer-tiny) in a temporary directory,
and predict with the run.

    from suite import testing

    def test_batches_fit_the_objective():
        testing.check_batches("palindrome")

    def test_tokenizer_round_trips():
        testing.roundtrip_tokenizer("palindrome")

    def test_trains_and_predicts(tmp_path):
        run = testing.train("palindrome", tmp_path)
        assert testing.metrics(run)["splits"]["test"]["accuracy"] >= 0
        assert testing.predict(run, "12321").startswith(("yes", "no"))

Tasks are named as ``suite tasks`` lists them: the plugin must be installed (``pip install -e .``),
or registered for the test with ``with testing.registered(MyPlugin()):``. Every helper raises
``AssertionError`` with the reason when the task breaks its contract.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset

from . import cli, config
from . import registry as registry_mod
from .runs import load_run
from .task import Task
from .tokenizer import Tokenizer

# Settings that make any task train in seconds: the tiny preset, small batches, few evaluation batches.
TINY = {
    "backbone.preset": "tiny",
    "data.batch_size": 8,
    "data.eval_batch_size": 8,
    "data.num_workers": 0,
    "optim.warmup_steps": 1,
    "trainer.limit_val_batches": 2,
    "trainer.limit_test_batches": 2,
    "trainer.log_every_n_steps": 1,
    "trainer.accelerator": "cpu",
}


def get_task(task: str | Task) -> Task:
    return registry_mod.get_registry().task(task) if isinstance(task, str) else task


def tiny(task: Task) -> dict[str, Any]:
    """TINY for ``task``: a sequence-to-sequence task gets the tiny encoder-decoder preset."""
    from suite.tasks.seq2seq import Seq2Seq

    seq2seq = isinstance(task.objective, type) and issubclass(task.objective, Seq2Seq)
    return {**TINY, "backbone.preset": "transformer-tiny"} if seq2seq else dict(TINY)


def resolve(task: str | Task, overrides: dict[str, Any] | None = None) -> dict:
    """The task's resolved config with the TINY settings and ``overrides`` (dotted keys)."""
    task = get_task(task)
    return config.resolve(task, overrides={**tiny(task), **(overrides or {})},
                          presets=registry_mod.get_registry().all_presets())


@contextlib.contextmanager
def registered(*plugins):
    """A fresh registry, for the ``with`` block, holding the built-in plugins and ``plugins``
    (modules or objects with ``@suite.hookimpl`` functions), registered directly under their
    module or class name. External plugins installed with pip are left out."""
    previous = registry_mod._registry
    reg = registry_mod.reset_registry(autoload=False)
    for plugin in plugins:
        reg.register(plugin, getattr(plugin, "__name__", type(plugin).__name__))
    try:
        yield reg
    finally:
        registry_mod._registry = previous


def roundtrip_tokenizer(task: str | Task, tokenizer: Tokenizer | None = None, overrides: dict | None = None) -> Tokenizer:
    """Save the tokenizer's state as a run directory does (JSON), load it back with the task's
    ``load_tokenizer`` and check that the state survived. Returns the rebuilt tokenizer."""
    task = get_task(task)
    tokenizer = tokenizer if tokenizer is not None else task.build_tokenizer(resolve(task, overrides))
    state = tokenizer.state()
    try:
        saved = json.loads(json.dumps(state))
    except TypeError as e:
        raise AssertionError(f"task {task.name!r}: the tokenizer's state() is not JSON: {e}") from None
    again = task.load_tokenizer(saved)
    assert again.state() == saved, f"task {task.name!r}: the tokenizer's state changes when loaded: {saved} -> {again.state()}"
    return again


def first_samples(dataset, n: int) -> list:
    if isinstance(dataset, IterableDataset):
        return [s for _, s in zip(range(n), dataset)]
    return [dataset[i] for i in range(min(n, len(dataset)))]


def check_batch(batch: dict, layout: type, where: str = "batch") -> None:
    """``batch`` has every key ``layout`` (a TypedDict from ``suite``) requires, all values are
    tensors, and they agree on the batch size."""
    assert isinstance(batch, dict), f"{where}: collate must return a dict of tensors, not {type(batch).__name__}"
    missing = sorted(layout.__required_keys__ - set(batch))
    assert not missing, f"{where}: missing {missing} for {layout.__name__} (it has {sorted(batch)})"
    sizes = set()
    lists = {k for k, t in layout.__annotations__.items() if "list" in str(t)}  # per-row Python values (references)
    for key, value in batch.items():
        kinds = (torch.Tensor, list) if key in lists else torch.Tensor
        assert isinstance(value, kinds), f"{where}: {key!r} is a {type(value).__name__}, not a tensor"
        sizes.add(len(value))
    assert len(sizes) == 1, f"{where}: the tensors disagree on the batch size: " + \
        ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items())


def check_batches(task: str | Task, overrides: dict | None = None, n: int = 4) -> dict[str, dict]:
    """Build the task's data on the TINY settings, collate ``n`` samples of every split, check
    each batch against the objective's layout (``objective.batch``), and run the model on it: the
    training loss must be a finite number. Returns the batches by split."""
    from .module import SuiteModule

    task = get_task(task)
    cfg = resolve(task, overrides)
    tokenizer = task.build_tokenizer(cfg)
    splits = task.build_data(tokenizer, cfg)
    assert {"train", "val", "test"} <= set(splits), f"task {task.name!r}: build_data gave the splits {sorted(splits)}"
    batches = {}
    for split, dataset in splits.items():
        samples = first_samples(dataset, n)
        assert samples, f"task {task.name!r}: the {split} split is empty"
        batch = batches[split] = task.collate(samples)
        check_batch(batch, task.objective.batch, f"task {task.name!r}, {split} split")
    model = SuiteModule(task, tokenizer, cfg)
    loss = model.objective.loss(model, batches["train"])
    assert torch.isfinite(loss), f"task {task.name!r}: the training loss of a fresh model is {float(loss)}"
    return batches


def train(task: str | Task, root, *, steps: int = 4, overrides: dict[str, Any] | None = None) -> Path:
    """Train ``task`` for ``steps`` steps on the TINY settings with the real ``suite train``, in a
    new run directory under ``root``; returns the run directory."""
    name = get_task(task).name
    settings = {**tiny(get_task(task)), "trainer.max_steps": steps, "trainer.val_check_interval": steps,
                "run.root": str(root), "run.name": next_name(Path(root) / name), **(overrides or {})}
    argv = ["train", "--task", name, "--no-progress"]
    for key, value in settings.items():
        argv += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    print(err.getvalue(), end="", file=sys.stderr)
    assert code == 0, f"suite {' '.join(argv)} exited {code}: {err.getvalue().strip().splitlines()[-1:]}"
    return Path(root) / name / settings["run.name"]


def next_name(folder: Path) -> str:
    n = 1
    while (folder / f"run-{n}").exists():
        n += 1
    return f"run-{n}"


def metrics(run_dir) -> dict:
    """The run's metrics.json: {"splits": {split: {metric: value}}, "primary", "history", ...}."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def predict(run_dir, text: str, **options) -> str:
    """What ``suite predict RUN TEXT --key VALUE`` prints, from the run's saved files alone."""
    task, _, _, module = load_run(run_dir, registry_mod.get_registry())
    module.eval()
    with torch.no_grad():
        return task.predict(module, text, options)


__all__ = ["TINY", "resolve", "registered", "roundtrip_tokenizer", "check_batch", "check_batches", "train",
           "metrics", "predict"]
