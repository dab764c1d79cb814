"""Run directories and weights.

A run directory holds (DESIGN.md invariant 4):
  config.yaml             the resolved config, enough to reproduce the run
  tokenizer.json          the tokenizer's state
  checkpoints/last.ckpt   the Lightning checkpoint to resume from
  weights/{backbone,adapter,head}.safetensors   the weights, split by prefix
  metrics.json            final metrics per split and the validation history
  logs/                   the loggers' files (metrics.csv, TensorBoard events, ...)
An export (`suite export RUN --format hf`: config.json, model.safetensors, suite_tokenizer.json, and
suite_parts.safetensors where the backbone is a transformers model's) loads wherever a run directory
does: eval, predict, --init-from.
Weights from elsewhere are read with safetensors only, never unpickled.

Every file is written whole or not at all (``files.atomic``: a temporary name, then ``os.replace``).
A file read back that is truncated, corrupt or of another version is one ``SuiteError`` naming
the file, what is wrong and what to do (``files.read_json``, ``read_config``, ``read_weights``).
A run of several tasks (core/joint.py) keeps each task's adapter and head in weights/<task>/ and
every task's tokenizer in tokenizer.json by name; ``load_set`` and ``save_set_weights`` read and
write either kind (``member_folder``), ``load_member`` one task of a joint run, ``member_source``
--init-from it.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import adapt, hf_export, hf_names, joint
from . import config as config_mod
from .files import DAMAGED, atomic, read_json, require, write_json, write_text  # noqa: F401  (suite.runs.write_json etc., as before)
from .backbone import BackboneConfig, architecture_differences, same_architecture  # noqa: F401  (suite.runs.*, as before)
from .errors import SuiteError
from .module import SuiteModule

PARTS = ("backbone", "adapter", "head")
# `suite export --format hf` (export.py): one directory that loads wherever a run directory does
EXPORT_CONFIG, EXPORT_WEIGHTS, EXPORT_TOKENIZER = "config.json", "model.safetensors", "suite_tokenizer.json"
EXPORT_PARTS = "suite_parts.safetensors"  # an export in a transformers model's layout: the task's adapter and head


def new_run_dir(cfg: dict) -> Path:
    root = Path(cfg["run"]["root"]) / cfg["task"]
    name = cfg["run"].get("name") or time.strftime("%Y%m%d-%H%M%S")
    path, n = root / name, 1
    while path.exists() and not cfg["run"].get("name"):
        n += 1
        path = root / f"{name}-{n}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_run_files(run_dir: Path, cfg: dict, tokenizer) -> None:
    """config.yaml and tokenizer.json; ``tokenizer``: the run's, or a run of several tasks' ``joint.Tokenizers``
    (a set of one is saved as its tokenizer alone)."""
    if isinstance(tokenizer, dict) and len(tokenizer) == 1:
        (tokenizer,) = tokenizer.values()
    write_text(run_dir / "config.yaml", config_mod.dump(cfg))
    write_json(run_dir / "tokenizer.json", tokenizer.state())


def save_weights(module, run_dir: Path, parts=PARTS, folder: str = "weights") -> None:
    """``run_dir/folder/<part>.safetensors`` for each of ``parts`` (a joint run: weights/<task>/ too)."""
    out = Path(run_dir) / folder
    out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        state = {k: v.detach().cpu().contiguous() for k, v in adapt.plain_state(getattr(module, part)).items()}
        with atomic(out / f"{part}.safetensors") as tmp:
            save_file(state, str(tmp))


METRICS_KEYS = ("step", "splits")  # what every finished run's metrics.json holds
PRIMARY_KEYS = ("primary", "higher_is_better")  # and a single-task run's (a joint run's are each task's, in `tasks`)


def read_metrics(run_dir: Path, missing_ok: bool = False) -> dict | None:
    """A finished run's metrics.json (None if there is none and ``missing_ok``). Resuming the run
    writes it again, so that is what a damaged one asks for."""
    path = Path(run_dir) / "metrics.json"
    if missing_ok and not path.is_file():
        return None
    hint = ("export the run again" if is_export(run_dir) else
            f"delete it and run `suite train --resume {run_dir}`, which writes it again")
    data = read_json(path, hint, METRICS_KEYS)
    return data if "tasks" in data else require(data, path, PRIMARY_KEYS, hint)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    run_dir = path.parent.parent if path.parent.name == "weights" else path.parent
    hint = (f"`suite train --resume {run_dir}` writes the weights again from its last checkpoint"
            if (run_dir / "checkpoints" / "last.ckpt").is_file() else "export the run again" if is_export(run_dir) else DAMAGED)
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise SuiteError(f"{path}: weights file not found (did the run finish? `suite train --resume` completes it)") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise SuiteError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]}); {hint}") from None


def load_part(module, part: str, state: dict[str, torch.Tensor], origin: str) -> None:
    target = getattr(module, part)
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise SuiteError(f"{origin}: {part} weights do not fit this model: {first}") from None


def is_export(path: Path) -> bool:
    """A directory that `suite export --format hf` wrote (config.json with a ``suite`` section)."""
    return (Path(path) / EXPORT_CONFIG).is_file() and not (Path(path) / "config.yaml").is_file()


def export_family(run_dir: Path) -> str | None:
    """The transformers ``model_type`` of an export written in that model's layout (core/hf_export.py:
    the backbone in model.safetensors under the model's names, adapter and head in suite_parts.safetensors);
    None for suite's own layout (``model_type: suite``, every tensor in model.safetensors, keys
    prefixed ``backbone.``, ``adapter.``, ``head.``), which exports of other backbones and earlier
    versions of suite have."""
    path = Path(run_dir) / EXPORT_CONFIG
    model_type = read_json(path, "export the run again").get("model_type", "suite")
    if model_type == "suite":
        return None
    if model_type not in hf_names.NAMES:
        raise SuiteError(f"{path}: model_type {model_type!r} is not one this version of suite exports "
                         f"({', '.join(['suite', *hf_names.NAMES])}); export the run again, or update suite")
    return model_type


def read_config(run_dir: Path) -> dict:
    """The resolved config of a run directory or of an export of one."""
    run_dir = Path(run_dir)
    if is_export(run_dir):
        path = run_dir / EXPORT_CONFIG
        cfg = read_json(path, "not a suite export (`suite export RUN --format hf` writes one), or a damaged one", ("suite",))["suite"]
    elif not (run_dir / "config.yaml").is_file():
        raise SuiteError(f"{run_dir}: not a run directory (no config.yaml)")
    else:
        path = run_dir / "config.yaml"
        cfg = config_mod.load_yaml(path, hint=DAMAGED)
    check_config(cfg, path)
    # settings added since the run was made take their defaults (run directories keep loading)
    return config_mod.complete(cfg, str(run_dir))


def check_config(cfg, path: Path) -> None:
    """What every saved config has, whatever its version: the task (a joint run: its tasks, each
    with its section) and mappings for the sections. ``task`` is written last: a truncated file lacks it."""
    if not isinstance(cfg, dict):
        raise SuiteError(f"{path}: the saved config is not a mapping; {DAMAGED}")
    if not isinstance(cfg.get("task"), str):
        raise SuiteError(f"{path}: no `task` (truncated, or not a run's config); {DAMAGED}")
    for name in ("backbone", "data", "model", "optim", "trainer", "init", "run", "joint", "tasks"):
        if name in cfg and not isinstance(cfg[name], dict):
            raise SuiteError(f"{path}: `{name}` is {cfg[name]!r}, not a mapping; {DAMAGED}")
    if "joint" in cfg:
        names = cfg["joint"].get("tasks")
        sections = cfg.get("tasks") or {}
        if not isinstance(names, list) or not names or any(n not in sections for n in names):
            raise SuiteError(f"{path}: a joint run's config without the section of each of its tasks "
                             f"(truncated, or written by another version of suite); {DAMAGED}")


def weights_path(run_dir: Path, part: str) -> Path:
    """The file that holds a part's weights: weights/<part>.safetensors, or in an export model.safetensors
    (the backbone, and in suite's own layout every part) or suite_parts.safetensors (adapter and head)."""
    if not is_export(run_dir):
        return Path(run_dir) / f"weights/{part}.safetensors"
    return Path(run_dir) / (EXPORT_WEIGHTS if part == "backbone" or export_family(run_dir) is None else EXPORT_PARTS)


def read_parts(run_dir: Path, parts=PARTS) -> dict[str, dict[str, torch.Tensor]]:
    """``{part: state dict}`` from weights/<part>.safetensors, or from an export's files (``export_family``)."""
    run_dir = Path(run_dir)
    if not is_export(run_dir):
        return {part: read_weights(weights_path(run_dir, part)) for part in parts}
    fam, files, out = export_family(run_dir), {}, {}
    for part in parts:
        path = weights_path(run_dir, part)
        if path not in files:
            files[path] = read_weights(path)
        if fam is not None and part == "backbone":
            try:
                out[part] = hf_export.read_backbone(fam, files[path])
            except KeyError as e:
                raise SuiteError(f"{path}: not the tensors of a {fam} model: it lacks {e.args[0]}; export the run again") from None
        else:
            out[part] = {k[len(part) + 1:]: v for k, v in files[path].items() if k.startswith(part + ".")}
    return out


def tokenizer_path(run_dir: Path) -> Path:
    return Path(run_dir) / (EXPORT_TOKENIZER if is_export(run_dir) else "tokenizer.json")


def read_tokenizer_state(run_dir: Path) -> dict:
    path = tokenizer_path(run_dir)
    if not path.is_file():
        raise SuiteError(f"{run_dir}: {path.name} is missing")
    return read_json(path)


def rebuild_tokenizer(task, state, run_dir: Path):
    """``task.load_tokenizer(state)``; a state it cannot take (another version's, a damaged one) is one line naming the file."""
    try:
        return task.load_tokenizer(state)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise SuiteError(f"{tokenizer_path(run_dir)}: not a state the {task.name} tokenizer takes ({e}): damaged, or "
                         "written by another version of suite; restore the file, or train the run again") from None


def load_run(run_dir, registry, *, weights: bool = True, task: str | None = None):
    """Rebuild (task, cfg, tokenizer, module) from a run directory (or an export of one), weights loaded.

    ``task``: the task of a joint run (core/joint.py) to load, with the joint backbone; for any other
    run, if given, the task it must be."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    if joint.is_joint(cfg):
        return load_member(run_dir, cfg, registry, task, weights)
    if task is not None and task != cfg.get("task"):
        raise SuiteError(f"{run_dir}: a run of task {cfg.get('task')!r}, not {task!r}")
    tasks, cfg, tokenizers, module = load_set(run_dir, registry, weights=weights)
    return tasks[cfg["task"]], cfg, tokenizers[cfg["task"]], module


def describe_backbone(b: dict) -> str:
    layers = (f"n_encoder_layers={b['n_encoder_layers']}, n_decoder_layers={b.get('n_decoder_layers')}" if b.get("n_encoder_layers")
              else f"n_layers={b.get('n_layers')}")
    return f"preset {b.get('preset')!r} (d_model={b.get('d_model')}, {layers}, n_heads={b.get('n_heads')}, positions={b.get('positions', 'learned')})"


def resolve_init(spec: str, registry, pretrained=None) -> tuple[str, dict, dict[str, torch.Tensor], str]:
    """``--init-from`` -> (kind, backbone config, backbone state dict with 'backbone.' stripped, origin).

    ``spec`` is a run directory or a weight source, ``NAME`` or ``NAME:ARGUMENT``; ``pretrained``
    is the source's already loaded :class:`suite.Pretrained`, if the caller has it.
    """
    path = Path(spec)
    if path.is_dir():
        cfg = read_config(path)
        state = read_parts(path, ("backbone",))["backbone"]
        kind = "export" if is_export(path) else "run"
        return kind, cfg["backbone"], state, f"{kind} {path} (task {cfg.get('task')})"
    pre = pretrained if pretrained is not None else load_source(spec, registry)
    state = {k[len("backbone."):]: v for k, v in pre.state_dict.items() if k.startswith("backbone.")}
    return "source", dict(pre.backbone), state, f"weight source {spec}" + (f" ({pre.description})" if pre.description else "")


def load_source(spec: str, registry):
    """``NAME`` or ``NAME:ARGUMENT`` -> the weight source's :class:`suite.Pretrained`."""
    sources = registry.all_weight_sources()
    name, _, arg = spec.partition(":")
    registry.check_usable("weight source", name)
    if name not in sources:
        known = ", ".join(sources) or "none installed"
        raise SuiteError(f"--init-from {spec}: not a run directory and not a weight source (sources: {known})")
    return sources[name].load(arg)


def init_own_parts(module, state: dict[str, torch.Tensor], origin: str) -> int:
    """Load a source's ``adapter.`` and ``head.`` tensors into a task that adopted the source's
    vocabulary (``Task.tokenizer_from_source``); tensors the task's modules lack are left out."""
    loaded = 0
    for part in ("adapter", "head"):
        own = getattr(module, part).state_dict()
        fit = {}
        for k, v in state.items():
            if k.startswith(part + ".") and k[len(part) + 1:] in own:
                key = k[len(part) + 1:]
                if own[key].shape != v.shape:
                    raise SuiteError(f"{origin}: {part} tensor {key} has shape {tuple(v.shape)}, this model needs {tuple(own[key].shape)}")
                fit[key] = v
        getattr(module, part).load_state_dict(fit, strict=False)
        loaded += len(fit)
    return loaded


def init_backbone(module, state: dict[str, torch.Tensor], origin: str) -> dict[str, int]:
    """Load a backbone state dict into ``module.backbone``; adapter and head stay fresh.

    Returns the counts: loaded (tensors copied), skipped (tensors in the source this backbone has
    no place for) and initialised (tensors of this model left at their fresh values).
    """
    own = module.backbone.state_dict()
    loaded, skipped = {}, 0
    for k, v in state.items():
        if k in own and own[k].shape == v.shape:
            loaded[k] = v
        elif k in own:
            raise SuiteError(f"{origin}: backbone tensor {k} has shape {tuple(v.shape)}, this model needs {tuple(own[k].shape)}")
        else:
            skipped += 1
    if state and not loaded:
        raise SuiteError(f"{origin}: none of its {len(state)} backbone tensors has a place in this backbone "
                         "(a damaged weights file, or not a backbone's)")
    module.backbone.load_state_dict(loaded, strict=False)
    total = sum(1 for _ in module.state_dict())
    return {"loaded": len(loaded), "skipped": skipped, "initialised": total - len(loaded)}


# -- joint run directories (core/joint.py): one backbone, each task's tokenizer, adapter and head ----------
def tokenizer_of(run_dir: Path, task, states: dict):
    if task.name not in states:
        raise SuiteError(f"{tokenizer_path(run_dir)}: no state of the {task.name} tokenizer; {DAMAGED}")
    return rebuild_tokenizer(task, states[task.name], run_dir)


def member_folder(names: list[str], name: str) -> str:
    """Where task ``name``'s adapter and head are in a run of ``names``: weights/, or weights/<task>/ in a run of several."""
    return "weights" + ("" if len(names) == 1 else f"/{name}")


def member_weights(run_dir: Path, names: list[str], name: str) -> dict[str, dict]:
    """Task ``name``'s adapter and head tensors, from a run directory of ``names`` or an export."""
    if len(names) == 1:
        return read_parts(run_dir, ("adapter", "head"))
    return {part: read_weights(Path(run_dir) / member_folder(names, name) / f"{part}.safetensors") for part in ("adapter", "head")}


def tokenizer_states(run_dir: Path, names: list[str]) -> dict:
    """Each task's tokenizer state: tokenizer.json holds a run of one task's own, a run of several's by name."""
    states = read_tokenizer_state(run_dir)
    return {names[0]: states} if len(names) == 1 else states


def load_set(run_dir, registry, *, weights: bool = True):
    """(tasks, cfg, tokenizers, module) of a run directory (or an export), its tasks by name: the
    ``SuiteModule`` of its set of tasks, weights loaded."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    names = joint.task_names(cfg)
    tasks = {n: registry.task(n) for n in names}
    cfg = joint.current(cfg, tasks)
    states = tokenizer_states(run_dir, names)
    tokenizers = joint.Tokenizers({n: tokenizer_of(run_dir, t, states) for n, t in tasks.items()})
    module = SuiteModule(tasks, tokenizers, cfg)
    if weights:
        load_part(module, "backbone", read_parts(run_dir, ("backbone",))["backbone"], str(weights_path(run_dir, "backbone")))
        for n, member in module.members.items():
            for part, state in member_weights(run_dir, names, n).items():
                load_part(member, part, state, str(weights_path(run_dir, part)) if len(names) == 1 else f"{run_dir} ({n})")
    return tasks, cfg, tokenizers, module


def load_member(run_dir, cfg: dict, registry, name: str | None, weights: bool = True):
    """(task, cfg, tokenizer, module) of one task of a joint run: a single-task model with the joint backbone."""
    if name is None:
        raise SuiteError(f"{run_dir}: a joint run of {', '.join(cfg['joint']['tasks'])}; say which task with --task NAME")
    if name not in cfg["joint"]["tasks"]:
        raise SuiteError(f"{run_dir}: task {name!r} is not one of this joint run's tasks ({', '.join(cfg['joint']['tasks'])})")
    task, cfg_names = registry.task(name), joint.task_names(cfg)
    cfg = joint.task_config(joint.current(cfg, {name: task}), name)
    tokenizer = tokenizer_of(Path(run_dir), task, read_tokenizer_state(run_dir))
    module = SuiteModule(task, tokenizer, cfg)
    if weights:
        load_part(module, "backbone", read_parts(run_dir, ("backbone",))["backbone"], str(run_dir))
        for part, state in member_weights(run_dir, cfg_names, name).items():
            load_part(module, part, state, str(run_dir))
    return task, cfg, tokenizer, module


def member_source(spec, task):
    """``--init-from`` a joint run that trained ``task``: (that task's tokenizer, its ``adapter.`` and
    ``head.`` tensors), so the run starts from all of the task's weights; None for any other source."""
    path = Path(str(spec)) if spec else None
    if path is None or not path.is_dir() or is_export(path) or not joint.is_joint(read_config(path)):
        return None
    names = joint.task_names(read_config(path))
    if task.name not in names:
        return None
    state = {f"{part}.{k}": v for part, tensors in member_weights(path, names, task.name).items() for k, v in tensors.items()}
    return tokenizer_of(path, task, read_tokenizer_state(path)), state


def save_set_weights(module, run_dir: Path) -> None:
    """A run's weights: weights/backbone.safetensors, and each task's adapter and head (``member_folder``)."""
    save_weights(module, run_dir, parts=("backbone",))
    for n, member in module.members.items():
        save_weights(member, run_dir, parts=("adapter", "head"), folder=member_folder(module.names, n))
