"""The shared settings sections, typed: one dataclass per section, a docstring per field.

`suite train --help` shows these (core/config.py builds the jsonargparse parser from them). A task
adds its own sections with ``Task.settings`` (``{"data": MyData, "model": MyModel}``), dataclasses
written the same way; its ``data`` class may subclass :class:`DataSettings` to change a shared
default such as ``batch_size``. The ``trainer`` section is typed from ``lightning.Trainer``'s
signature; our defaults for it are in configs/defaults.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, get_type_hints

from .backbone import BackboneConfig
from .freeze import FREEZE_MODES

SEED_HELP = "seeds the model's initialisation and every data stream"


@dataclass
class BackboneSettings:
    """backbone: the shared Transformer; a preset names its architecture, a field set here wins over it"""

    preset: str = "tiny"
    """a backbone preset: tiny, small, base (configs/backbone/) or one a plugin adds"""


# Every BackboneConfig field may be set under `backbone`; unset (null), it comes from the preset.
BACKBONE_FIELDS = {name: Optional[tp] for name, tp in get_type_hints(BackboneConfig).items()}


@dataclass
class DataSettings:
    """data: the task's data; a task adds its own fields (Task.settings["data"])"""

    batch_size: int = 64
    """training samples per optimiser step (per device)"""
    eval_batch_size: int = 256
    """samples per batch in validation and test"""
    num_workers: int = 0
    """DataLoader worker processes (0: load in the training process)"""
    train_limit: Optional[int] = None
    """train on this many training samples only, the same ones every epoch (null: all)"""


@dataclass
class ClassifierSettings:
    """model: the classifier head"""

    pooling: Literal["cls", "mean"] = "cls"
    """cls or mean: the [CLS] state or the mean of the token states"""
    label_smoothing: float = 0.0
    """of the cross-entropy targets"""


@dataclass
class OptimSettings:
    """optim: AdamW with a warmup and a learning-rate schedule"""

    lr: float = 1.0e-3
    """peak learning rate"""
    weight_decay: float = 0.01
    """AdamW weight decay (not on norms, biases and embeddings)"""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    """AdamW betas"""
    warmup_steps: int = 100
    """steps of linear warmup from 0 to lr"""
    schedule: Literal["cosine", "constant"] = "cosine"
    """after warmup: cosine decay to min_lr_ratio * lr, or constant"""
    min_lr_ratio: float = 0.1
    """the cosine schedule's final learning rate, as a fraction of lr"""
    ema_decay: Optional[float] = None
    """an exponential moving average of the weights (Lightning's EMAWeightAveraging), e.g. 0.999:
    validated, tested and saved in place of the last weights; null: off"""
    ema_from: int = 0
    """the step from which the moving average is updated"""


@dataclass
class InitSettings:
    """init: where the backbone's first weights come from"""

    from_: Optional[str] = None
    """--init-from: a run directory, an export or a weight source (`suite plugins` lists them)"""
    encoder_from: Optional[str] = None
    """--init-encoder-from: an encoder-decoder's encoder (and source adapter) from a run, an export or a weight source"""
    decoder_from: Optional[str] = None
    """--init-decoder-from: an encoder-decoder's decoder (and target adapter) from a run, an export or a weight source"""
    freeze: Literal[FREEZE_MODES] = "none"  # type: ignore[valid-type]
    """--freeze: none, backbone, or fpt; the older name of --adapt full, frozen, fpt"""


@dataclass
class AdaptSettings:
    """adapt: how the backbone adapts once its weights are loaded (core/adapt.py, docs/transfer.md)"""

    method: str = "full"
    """--adapt: full, frozen, fpt, lora, bitfit, orca (ORCA's align stage, then full), or orca+METHOD"""
    lora_rank: int = 8
    """LoRA: the rank r of each update B A"""
    lora_alpha: float = 16.0
    """LoRA: the update is scaled by alpha / r"""
    lora_dropout: float = 0.0
    """LoRA: dropout on the input of each update"""
    lora_targets: list[str] = field(default_factory=lambda: ["attn.qkv", "attn.proj", "cross.q", "cross.kv", "cross.proj",
                                                             "mlp.fc", "mlp.gate", "mlp.proj"])
    """LoRA: the backbone's linear layers that get an update (those a block has)"""
    orca_steps: int = 100
    """ORCA: steps of the align stage (the task's adapter alone trains)"""
    orca_lr: float = 1.0e-3
    """ORCA: the align stage's learning rate (AdamW)"""
    orca_batch: int = 64
    """ORCA: target samples per align step"""
    orca_samples: int = 256
    """ORCA: reference samples, and the fixed target samples the distance before and after is measured on"""
    orca_distance: Literal["otdd", "ot"] = "otdd"
    """ORCA: otdd (label-aware optimal transport where the target has labels, as ORCA) or ot (features alone)"""
    orca_reference: Optional[str] = None
    """ORCA: what the target is aligned to: a run directory or a weight source; null: --init-from's"""


@dataclass
class RunSettings:
    """run: where a run is written and how it uses the machine"""

    root: str = "runs"
    """run directories go to <root>/<task>/<timestamp>"""
    name: Optional[str] = None
    """a fixed name instead of the timestamp"""
    checkpoint_every: int = 500
    """steps between resumable checkpoints (checkpoints/last.ckpt, written atomically)"""
    threads: Optional[int] = None
    """--threads: torch CPU threads per process; null: the cores this process may use / processes per machine"""
    matmul_precision: Literal["highest", "high", "medium"] = "highest"
    """float32 matmuls: highest (exact), high (TF32 on GPUs that have it), medium (bfloat16)"""
    logger: str = "csv"
    """--logger: csv, tensorboard, wandb, mlflow; several as csv,tensorboard (logs/ of the run)"""
    compile: bool | str = False
    """--compile: torch.compile the backbone: true (inductor) or a backend's name; pays off on a GPU"""


# The shared sections, in the order a resolved config lists them (seed first, trainer after optim).
SECTIONS = {"backbone": BackboneSettings, "data": DataSettings, "model": None, "optim": OptimSettings,
            "trainer": None, "init": InitSettings, "adapt": AdaptSettings, "run": RunSettings}

# Trainer arguments that `suite train` sets itself (train.make_trainer): not settings.
TRAINER_OWN = ("callbacks", "logger", "plugins", "enable_checkpointing", "enable_progress_bar",
               "enable_model_summary", "default_root_dir")
