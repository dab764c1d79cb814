"""Where a run's weights start: its module built, and --init-from (a run, an export, a weight source)
applied to it."""
from __future__ import annotations

from pathlib import Path

from . import runs
from .backbone import BackboneConfig
from .errors import SuiteError
from .fitting import say
from .module import SuiteModule


def build(task, cfg: dict, tokenizer=None):
    tokenizer = tokenizer if tokenizer is not None else task.build_tokenizer(cfg)
    return tokenizer, SuiteModule(task, tokenizer, cfg)


def apply_init(module: SuiteModule, cfg: dict, registry, origin_state=None, own: dict | None = None) -> dict | None:
    """--init-from and --freeze. Returns the loaded/skipped/initialised counts, or None.

    ``own``: by task, the ``adapter.`` and ``head.`` tensors that task starts from as well (it
    adopted a weight source's vocabulary, ``Task.tokenizer_from_source``, or --init-from is a joint
    run that trained it); ``origin_state``: adopt_source_backbone's, where it was called."""
    counts = None
    spec = cfg["init"].get("from")
    if spec:
        kind, backbone, state, origin = (origin_state or runs.resolve_init(str(spec), registry))[:4]
        if not runs.same_architecture(backbone, cfg["backbone"]):
            differ = runs.architecture_differences(backbone, cfg["backbone"])
            hint = (f"pass --backbone.preset {backbone.get('preset')}" if backbone.get("preset") != cfg["backbone"].get("preset")
                    else "pass " + " ".join(f"--backbone.{d.split()[0]} {d.split()[1]}" for d in differ))
            raise SuiteError(
                f"--init-from {spec}: its backbone is {runs.describe_backbone(backbone)} but this run uses "
                f"{runs.describe_backbone(cfg['backbone'])} ({'; '.join(differ)}, source != this run); {hint}"
            )
        counts = runs.init_backbone(module, state, origin)
        for name, tensors in (own or {}).items():
            loaded = runs.init_own_parts(module.members[name], tensors, origin)
            counts["loaded"] += loaded
            counts["initialised"] -= loaded
        say(f"init-from {origin}: loaded {counts['loaded']} tensors, skipped {counts['skipped']}, "
            f"newly initialised {counts['initialised']} "
            + ("(adapter and head are new)" if not own else
               f"(task {', '.join(own)}: its adapter and head come from the joint run)" if kind == "run" else
               f"(task {', '.join(own)} uses the source's vocabulary and embeddings)"))
    mode = cfg["init"].get("freeze") or "none"
    trainable = module.freeze_backbone(mode)
    if mode != "none":
        n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
        say(f"freeze {mode}: {trainable} backbone tensors train; {n_train:,} trainable parameters in all")
    return counts


def adopt_source_backbone(cfg: dict, registry) -> tuple | None:
    """A weight source (not a run directory) brings its own architecture: use it for this run.
    Returns resolve_init's tuple with the source's suite.Pretrained appended, or None."""
    spec = cfg["init"].get("from")
    if not spec or Path(str(spec)).is_dir():
        return None
    pretrained = runs.load_source(str(spec), registry)
    resolved = (*runs.resolve_init(str(spec), registry, pretrained), pretrained)
    backbone = BackboneConfig.from_dict(resolved[1]).to_dict()
    backbone["dropout"] = cfg["backbone"].get("dropout", 0.0)
    cfg["backbone"] = {"preset": resolved[1].get("preset", str(spec).partition(":")[0]), **backbone}
    return resolved
