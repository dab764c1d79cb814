"""Where a run's weights start: its module built, and --init-from (a run, an export, a weight source)
applied to it."""
from __future__ import annotations

from pathlib import Path

from . import adapt, runs
from .backbone import BackboneConfig
from .errors import SuiteError
from .fitting import say
from .module import SuiteModule


def build(task, cfg: dict, tokenizer=None):
    tokenizer = tokenizer if tokenizer is not None else task.build_tokenizer(cfg)
    return tokenizer, SuiteModule(task, tokenizer, cfg)


def apply_init(module: SuiteModule, cfg: dict, registry, origin_state=None, own: dict | None = None) -> dict | None:
    """--init-from, then --adapt (core/adapt.py). Returns the loaded/skipped/initialised counts, or None.

    ``own``: by task, the ``adapter.`` and ``head.`` tensors that task starts from as well (it
    adopted a weight source's vocabulary, ``Task.tokenizer_from_source``, or --init-from is a joint
    run that trained it); ``origin_state``: adopt_source_backbone's, where it was called."""
    counts = None
    spec = cfg["init"].get("from")
    for side in ("encoder", "decoder"):
        if cfg["init"].get(f"{side}_from"):
            side_counts = init_side(module, side, str(cfg["init"][f"{side}_from"]), cfg, registry)
            counts = side_counts if counts is None else {k: counts[k] + side_counts[k] for k in counts}
    if spec:
        kind, backbone, state, origin = (origin_state or runs.resolve_init(str(spec), registry))[:4]
        if not runs.same_architecture(backbone, cfg["backbone"]):
            if bool(backbone.get("n_encoder_layers")) != bool(cfg["backbone"].get("n_encoder_layers")):
                raise SuiteError(f"--init-from {spec}: one of the two is an encoder-decoder and the other a single stack; "
                                 "start an encoder-decoder's sides with --init-encoder-from and --init-decoder-from")
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
    module.adapted = adapt.apply(module, cfg)
    say(adapt.describe(module.adapted))
    return counts


# What a side's blocks must share with the source's to take its weights; the number of blocks, the
# positions and the norms around the stack may differ (what has no place, or no source, is reported).
BLOCK_FIELDS = ("d_model", "n_heads", "d_ff", "norm", "norm_type", "mlp", "n_kv_heads", "activation")


def init_side(module: SuiteModule, side: str, spec: str, cfg: dict, registry) -> dict:
    """``--init-encoder-from`` / ``--init-decoder-from``: one side of an encoder-decoder from a run,
    an export or a weight source; from a single stack (a decoder-only or encoder-only model) its
    blocks, positions and final norm, from an encoder-decoder its own side. The task's adapter of
    that side (``adapter.source`` / ``adapter.target``) takes the source's adapter where every tensor
    fits. Says which tensors went where and which start fresh (a decoder's cross-attention always)."""
    flag = f"--init-{side}-from {spec}"
    if not module.backbone.encoder_decoder:
        raise SuiteError(f"{flag}: this run's backbone {runs.describe_backbone(cfg['backbone'])} is not an encoder-decoder; "
                         "use --init-from")
    kind, backbone, state, origin = runs.resolve_init(spec, registry)
    if backbone.get("n_encoder_layers"):
        state = {k[len(side) + 1:]: v for k, v in state.items() if k.startswith(side + ".")}
    theirs, ours = BackboneConfig.from_dict(backbone).to_dict(), BackboneConfig.from_dict(cfg["backbone"]).to_dict()
    differ = [f"{k} {theirs[k]} != {ours[k]}" for k in BLOCK_FIELDS if theirs[k] != ours[k]]
    if differ:
        raise SuiteError(f"{flag}: its blocks are not this {side}'s ({'; '.join(differ)}, source != this run)")
    stack = getattr(module.backbone, side)
    own = stack.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not loaded:
        raise SuiteError(f"{flag}: none of its {len(state)} backbone tensors has a place in this {side}")
    stack.load_state_dict(loaded, strict=False)
    fresh = [k for k in own if k not in loaded]
    cross = [k for k in fresh if ".cross." in k or ".ln_cross." in k]
    n_adapter = init_side_adapter(module, side, spec, kind) if kind != "source" else 0
    blocks = sorted({int(k.split(".")[1]) for k in loaded if k.startswith("blocks.")})
    say(f"init {side} from {origin}: {len(loaded)} tensors into backbone.{side} (blocks {blocks[0]}-{blocks[-1]} of "
        f"{len(stack.blocks)}), {n_adapter} into adapter.{'source' if side == 'encoder' else 'target'}; "
        f"skipped {len(state) - len(loaded)}{skipped_names(state, loaded)}; fresh in backbone.{side}: {len(fresh)}"
        + (f", of them the cross-attention of every block ({len(cross)} tensors)" if cross else "")
        + (f": {', '.join(k for k in fresh if k not in cross)}" if len(fresh) > len(cross) else ""))
    total = sum(1 for _ in module.state_dict())
    return {"loaded": len(loaded) + n_adapter, "skipped": len(state) - len(loaded), "initialised": total - len(loaded) - n_adapter}


def skipped_names(state: dict, loaded: dict) -> str:
    names = [k for k in state if k not in loaded]
    return f" ({', '.join(names)}: no place here)" if 0 < len(names) <= 4 else ""


def init_side_adapter(module: SuiteModule, side: str, spec: str, kind: str) -> int:
    """The source run's adapter (of a run of one task) into this side's adapter, if every one of its
    tensors fits by name and shape; else none (a vocabulary or patch layout of its own)."""
    adapter = getattr(module.adapter, "source" if side == "encoder" else "target", None)
    if adapter is None or (side == "decoder" and adapter is getattr(module.adapter, "source", None)):
        return 0  # one embedding for both sides: the encoder's source decides it
    try:
        theirs = runs.read_parts(Path(spec), ("adapter",))["adapter"]
    except (SuiteError, OSError):
        return 0  # a joint run or an export without a task adapter
    own = adapter.state_dict()
    if set(theirs) != set(own) or any(own[k].shape != v.shape for k, v in theirs.items()):
        return 0
    adapter.load_state_dict(theirs)
    return len(theirs)


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
