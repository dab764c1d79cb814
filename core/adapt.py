"""Adaptation methods: which parameters train once a run's module is built and its weights loaded,
and the layers a method wraps. One setting, ``adapt.method`` (``--adapt``), applied in one place
(``apply``); no task has a branch of its own for it.

full      everything trains
frozen    the backbone is frozen; the task's adapter and head train
fpt       attention and MLP weights are frozen, norms and positions train (Lu et al. 2021)
lora      the backbone is frozen; each of its linear layers in ``adapt.lora_targets`` gets a
          low-rank update B A scaled by alpha / r, through Hugging Face's peft (Hu et al. 2021)
bitfit    only the backbone's biases train (Ben Zaken et al. 2022)
orca      ORCA's align stage (core/orca.py: the adapter is trained to bring the embedded target
          inputs close to the source's own features), then full fine-tuning (Shen et al. 2023);
          ``orca+METHOD`` aligns, then adapts by METHOD

The task's adapter and head always train. A LoRA run's weights are written merged (``plain_state``):
its run directory and its exports load without peft; its checkpoints keep the updates apart, so
that a resumed run continues them.
"""
from __future__ import annotations

import importlib.util

from torch import nn

from .errors import SuiteError
from .freeze import freeze_backbone

METHODS = ("full", "frozen", "fpt", "lora", "bitfit", "orca")
ALIGN = "orca"
FROM_FREEZE = {"none": "full", "backbone": "frozen", "fpt": "fpt"}  # --freeze MODE is --adapt FROM_FREEZE[MODE]
ADAPTER = "default"  # peft's name of the one LoRA adapter


def split(method: str) -> tuple[bool, str]:
    """``method`` -> (align first, the method that follows): ``orca`` is (True, full), ``orca+lora`` (True, lora)."""
    first, plus, then = str(method).partition("+")
    if first == ALIGN:
        then = then or "full"
        if then not in METHODS or then == ALIGN:
            raise SuiteError(f"--adapt {method}: orca+METHOD takes one of {', '.join(m for m in METHODS if m != ALIGN)} after the +")
        return True, then
    if plus or first not in METHODS:
        raise SuiteError(f"--adapt must be one of {', '.join(METHODS)} or orca+METHOD, not {method!r}")
    return False, first


def method_of(cfg: dict) -> str:
    """The run's adaptation method: ``adapt.method``, or what the older ``init.freeze`` names."""
    method = str((cfg.get("adapt") or {}).get("method") or "full")
    freeze = cfg["init"].get("freeze") or "none"
    if freeze != "none":
        if method not in ("full", FROM_FREEZE[freeze]):
            raise SuiteError(f"--freeze {freeze} (--adapt {FROM_FREEZE[freeze]}) and --adapt {method} contradict each other; "
                             "give --adapt alone")
        method = FROM_FREEZE[freeze]
    split(method)
    return method


def aligns(cfg: dict) -> bool:
    return split(method_of(cfg))[0]


NO_REFERENCE = "--adapt orca aligns the task's adapter to its source's features: give --init-from or --adapt.orca_reference"


def check(cfg: dict) -> None:
    """The run's method and, for ORCA, that it has something to align to: one line, before any work."""
    if aligns(cfg) and not (cfg["adapt"].get("orca_reference") or cfg["init"].get("from")):
        raise SuiteError(NO_REFERENCE)


def apply(module: nn.Module, cfg: dict) -> dict:
    """Set which of ``module``'s parameters train for the run's method (wrapping the backbone's linear
    layers for LoRA); returns what the load report and metrics.json say: the method, trainable
    parameters and their share."""
    method = method_of(cfg)
    then = split(method)[1]
    backbone = module.backbone
    if then == "lora":
        lora(backbone, cfg["adapt"])
    elif then == "bitfit":
        biases = [p for n, p in backbone.named_parameters() if n.endswith(".bias") or n == "bias"]
        if not biases:
            raise SuiteError("--adapt bitfit trains the backbone's biases, and this backbone has none "
                             "(backbone.bias false); use another method or a backbone with biases")
        for name, p in backbone.named_parameters():
            p.requires_grad_(name.endswith(".bias") or name == "bias")
    else:
        freeze_backbone(backbone, {method: mode for mode, method in FROM_FREEZE.items()}[then])
    return trainable(module, method)


def trainable(module: nn.Module, method: str) -> dict:
    """The method, and the parameters that train: a count and a share of all of them."""
    params = list({id(p): p for p in module.parameters()}.values())
    total = sum(p.numel() for p in params)
    n = sum(p.numel() for p in params if p.requires_grad)
    return {"method": method, "trainable": n, "parameters": total, "share": round(n / max(1, total), 6)}


def describe(info: dict) -> str:
    return f"adapt {info['method']}: {info['trainable']:,} of {info['parameters']:,} parameters train ({100 * info['share']:.2f}%)"


# -- LoRA, through peft --------------------------------------------------------------------------
def lora(backbone: nn.Module, settings: dict) -> None:
    """Freeze the backbone and give each linear layer named in ``lora_targets`` a LoRA update."""
    if importlib.util.find_spec("peft") is None:
        raise SuiteError("--adapt lora needs peft: pip install 'suite[adapt]'")
    from peft import LoraConfig, inject_adapter_in_model

    rank, wanted = int(settings["lora_rank"]), list(settings["lora_targets"])
    if rank < 1:
        raise SuiteError(f"adapt.lora_rank: {rank} must be at least 1")
    layers = {name: m for name, m in backbone.named_modules()
              if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in wanted)}
    if not layers:
        raise SuiteError(f"adapt.lora_targets {wanted}: no linear layer of this backbone has such a name "
                         "(its layers: attn.qkv, attn.proj, mlp.fc, mlp.gate, mlp.proj, cross.q, cross.kv, cross.proj)")
    for name, m in layers.items():
        if rank > min(m.in_features, m.out_features):
            raise SuiteError(f"adapt.lora_rank {rank} is larger than layer {name} ({m.out_features}x{m.in_features}) "
                             f"allows: at most {min(m.in_features, m.out_features)}")
    for p in backbone.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=float(settings["lora_alpha"]), lora_dropout=float(settings["lora_dropout"]),
                                       target_modules=list(layers)), backbone, adapter_name=ADAPTER)


def lora_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The LoRA-wrapped layers of ``module`` by name (none without peft or LoRA)."""
    if importlib.util.find_spec("peft") is None:
        return {}
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def plain_state(module: nn.Module) -> dict:
    """``module``'s state dict with every LoRA update merged into its layer's weight, under the names the
    layer has without LoRA: what a run writes, so that it loads without peft."""
    state = module.state_dict()
    layers = lora_layers(module)
    if not layers:
        return state
    plain = {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}
    for name, layer in layers.items():
        plain[f"{name}.weight"] = layer.get_base_layer().weight.detach() + layer.get_delta_weight(ADAPTER).detach()
    return plain
