"""ORCA's align stage (Shen et al., ICML 2023, "Cross-Modal Fine-Tuning: Align then Refine").

Before a run fine-tunes a backbone pretrained on another modality, each task's adapter trains alone
for ``adapt.orca_steps`` steps to bring its embedded training inputs close to reference features of
the source's own modality. The distance is optimal transport computed by POT: ``otdd``, the optimal
transport dataset distance (Alvarez-Melis & Fusi 2020), whose cost between two labelled samples adds
to ||x - x'||^2 the W2^2 between their classes, each a diagonal Gaussian; or ``ot``, features alone.

Reference features: a run directory's adapter over that run's training samples, or a weight
source's embeddings over the shipped training data of a task that adopts its vocabulary (a
classification task first: ORCA's text reference is a labelled set); labels are that task's classes,
else k-means clusters. A sample's features are the mean of the adapter's output over the positions
that are not padding.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .tasks.classification import Classification

from . import config as config_mod
from . import joint, runs
from .backbone import BackboneConfig
from .cache import prepare
from .data import training_samples
from .adapt import NO_REFERENCE
from .errors import SuiteError
from .fitting import say
from .module import SuiteModule
from .streams import Stream
from .task import Task

CLUSTERS = 10  # k-means classes of reference features without labels (ORCA's infer_labels)
_references: dict[tuple, tuple] = {}  # (reference, d_model, samples, seed) -> (features, labels, origin), for the process


def align(module, dm, cfg: dict, registry) -> dict:
    """Train each task's adapter of ``module`` (a run of one task or a joint run) towards the reference
    features; returns the figures of the task (a joint run: by task): reference, distance, whether it
    used labels, steps, samples, the distance before and after on fixed training samples, seconds."""
    try:
        import ot
    except ImportError:
        raise SuiteError("--adapt orca needs POT: pip install 'suite[adapt]'") from None
    dm.setup()
    device = next(module.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's data and dropout stay as they were
        out = {name: align_task(name, member, dm.members[name], joint.task_config(cfg, name), registry, ot)
               for name, member in module.members.items()}
    return out if len(out) > 1 else next(iter(out.values()))


def align_task(name: str, member, data, cfg: dict, registry, ot) -> dict:
    """The align stage of one task: ``member`` its module, ``data`` its SuiteDataModule, ``cfg`` its config."""
    a, seed = cfg["adapt"], int(cfg["seed"])
    spec = a.get("orca_reference") or cfg["init"].get("from")
    if not spec:
        raise SuiteError(NO_REFERENCE)
    n, bs, steps = int(a["orca_samples"]), int(a["orca_batch"]), int(a["orca_steps"])
    adapter, task = member.adapter, member.task
    device = next(adapter.parameters()).device
    ref, ref_y, origin = reference(str(spec), int(cfg["backbone"]["d_model"]), n, seed, registry)
    ref, ref_y = ref.to(device), ref_y.to(device)
    stream = training_stream(data.datasets["train"], cfg, task)
    fixed = stream.samples(torch.arange(min(n, stream.size())), torch.Generator().manual_seed(seed))
    label_aware = a["orca_distance"] == "otdd" and labels_of(task.collate(fixed[:1])) is not None

    def measure() -> float:
        adapter.eval()
        with torch.no_grad():
            x, y = embed(adapter, task, fixed, bs, device)
            return float(distance(x, y if label_aware else None, ref, ref_y, ot))

    say(f"orca: aligning task {name}'s adapter to {origin}: {a['orca_distance'] if label_aware else 'ot'}, "
        f"{steps} steps of {bs} samples")
    start, params, was_training = time.time(), list(adapter.parameters()), adapter.training
    flags = [p.requires_grad for p in params]
    try:
        before = measure()
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=float(a["orca_lr"]))
        g = torch.Generator().manual_seed(seed)
        adapter.train()
        for _ in range(steps):
            picked = torch.randperm(stream.size(), generator=g)[:bs]
            draws = torch.Generator().manual_seed(int(torch.randint(2 ** 62, (1,), generator=g)))  # augmentation, sampling
            x, y = embed(adapter, task, stream.samples(picked, draws), bs, device)
            opt.zero_grad(set_to_none=True)
            distance(x, y if label_aware else None, ref, ref_y, ot).backward()
            opt.step()
        after = measure()
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
            p.grad = None
        adapter.train(was_training)
    seconds = round(time.time() - start, 2)
    say(f"orca: task {name}: distance {before:.4g} -> {after:.4g} on {len(fixed)} training samples, {steps} steps, {seconds:.1f} s")
    return {"reference": origin, "distance": "otdd" if label_aware else "ot", "label_aware": label_aware, "steps": steps,
            "samples": len(fixed), "before": before, "after": after, "seconds": seconds}


def training_stream(ds, cfg: dict, task) -> Stream:
    """The training samples as ``SuiteDataModule.train_dataloader`` serves them, ``data.train_limit`` included."""
    ds = training_samples(ds, cfg, task.name)
    if not isinstance(ds, Stream):
        raise SuiteError(f"task {task.name!r}: --adapt orca needs training data that is a suite.Stream or a map-style "
                         "Dataset, not a plain IterableDataset")
    return ds


def embed(adapter, task, samples: list, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Samples -> (features (N, d): the adapter's output averaged over the positions that are not padding,
    class labels (N,) where the batches have one integer ``label`` per sample, else None)."""
    feats, labels = [], []
    for i in range(0, len(samples), batch_size):
        batch = task.collate(samples[i:i + batch_size])
        x = adapter(batch["inputs"].to(device))  # (B, T, d)
        padding = batch.get("padding")
        if isinstance(padding, torch.Tensor) and padding.shape == x.shape[:2]:
            keep = (~padding.to(device)).unsqueeze(-1).to(x.dtype)
            feats.append((x * keep).sum(1) / keep.sum(1).clamp_min(1))
        else:
            feats.append(x.mean(1))
        y = labels_of(batch)
        labels.append(None if y is None else y.to(device))
    return torch.cat(feats), None if any(y is None for y in labels) else torch.cat(labels)


def labels_of(batch: dict) -> torch.Tensor | None:
    """A batch's class labels: its ``label`` where that is one integer per sample (classification), else None."""
    y, inputs = batch.get("label"), batch["inputs"]
    ok = isinstance(y, torch.Tensor) and y.dim() == 1 and len(y) == len(inputs) and not y.is_floating_point()
    return y if ok else None


def sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``a`` (n, d) and ``b`` (m, d): (n, m)."""
    return (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None] - 2 * a @ b.T).clamp_min(0)


def class_stats(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's diagonal Gaussian: means and standard deviations (k, d) of the rows of ``x`` with labels ``y`` (0..k-1)."""
    onehot = F.one_hot(y, int(y.max()) + 1).to(x.dtype)  # (N, k)
    count = onehot.sum(0).clamp_min(1)[:, None]
    mean = onehot.T @ x / count
    var = onehot.T @ (x - mean[y]).pow(2) / count
    return mean, var.clamp_min(1e-12).sqrt()


def distance(x, y, ref, ref_y, ot) -> torch.Tensor:
    """Exact optimal transport between the uniform distributions on ``x`` and ``ref``; with target labels
    ``y`` the OTDD cost, ||x - x'||^2 + W2^2 between the two samples' class Gaussians (ref_y: 0..k-1)."""
    cost = sqdist(x, ref)
    if y is not None:
        y = y.unique(return_inverse=True)[1]
        (mu, sd), (ref_mu, ref_sd) = class_stats(x, y), class_stats(ref, ref_y)
        cost = cost + (sqdist(mu, ref_mu) + sqdist(sd, ref_sd))[y][:, ref_y]
    a = torch.full((len(x),), 1 / len(x), dtype=cost.dtype, device=cost.device)
    b = torch.full((len(ref),), 1 / len(ref), dtype=cost.dtype, device=cost.device)
    return ot.emd2(a, b, cost)


def reference(spec: str, d_model: int, n: int, seed: int, registry) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(features (N, d), labels 0..k-1 (N,), origin) of ``n`` training samples of the reference, once per process."""
    key = (str(Path(spec).resolve()) if Path(spec).is_dir() else spec, d_model, n, seed)
    if key not in _references:
        task, rcfg, tokenizer, module = reference_model(spec, seed, registry)
        prepare(task, rcfg)
        stream = training_stream(task.build_data(tokenizer, rcfg)["train"], rcfg, task)
        g = torch.Generator().manual_seed(seed)
        samples = stream.samples(torch.randperm(stream.size(), generator=g)[:n], g)
        module.eval()
        with torch.no_grad():
            x, y = embed(module.adapter, task, samples, 64, "cpu")
        if y is None:
            from sklearn.cluster import KMeans

            k = min(CLUSTERS, len(x))
            y = torch.from_numpy(KMeans(k, n_init=10, random_state=seed).fit_predict(x.double().numpy()))
            labels = f"{k} k-means clusters"
        else:
            labels = "its classes"
        origin = f"{name_of(spec)} (task {task.name}, {len(x)} training samples, labels: {labels})"
        _references[key] = x, y.long().unique(return_inverse=True)[1], origin
    x, y, origin = _references[key]
    if x.shape[1] != d_model:
        raise SuiteError(f"--adapt orca: the reference {name_of(spec)} has {x.shape[1]}-wide features, this run's "
                         f"adapter makes {d_model}-wide ones; give --adapt.orca_reference a run or weight source of d_model {d_model}")
    return x, y, origin


def name_of(spec: str) -> str:
    """How a reference is named in messages: ``run DIR`` or ``weight source NAME``."""
    return f"{'run' if Path(spec).is_dir() else 'weight source'} {spec}"


def reference_model(spec: str, seed: int, registry) -> tuple:
    """(task, cfg, tokenizer, module) whose adapter makes the reference features: a run
    directory's (a joint run's first task), or a weight source's adapter in a task that adopts its vocabulary."""
    path = Path(spec)
    if path.is_dir():
        cfg = runs.read_config(path)
        first = joint.task_names(cfg)[0] if joint.is_joint(cfg) else None
        task, cfg, tokenizer, module = runs.load_run(path, registry, task=first)
        return task, cfg, tokenizer, module
    pre = runs.load_source(spec, registry)
    tasks = [t for t in registry.all_tasks().values() if type(t).tokenizer_from_source is not Task.tokenizer_from_source]
    for task in sorted(tasks, key=lambda t: not issubclass(t.objective, Classification)):  # labelled first, as ORCA's
        cfg = config_mod.resolve(task, overrides={"init.from": spec, "seed": seed}, presets=registry.all_presets())
        tokenizer = task.tokenizer_from_source(pre, cfg)
        if tokenizer is None:
            continue
        cfg["backbone"] = {"preset": pre.backbone.get("preset", spec.partition(":")[0]), **BackboneConfig.from_dict(pre.backbone).to_dict()}
        module = SuiteModule(task, tokenizer, cfg)
        runs.init_own_parts(module, pre.state_dict, f"weight source {spec}")
        return task, cfg, tokenizer, module
    raise SuiteError(f"--adapt orca: weight source {spec} has no reference features: no task adopts its vocabulary")
