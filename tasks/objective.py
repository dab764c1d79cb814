"""The objective contract: loss, metrics and decoding, written once and shared by every domain."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

# torchmetrics is imported where metrics are made: importing it takes seconds, and commands that
# only list tasks or plugins never need it.
if TYPE_CHECKING:
    from torchmetrics import MeanMetric, MetricCollection, SumMetric


def metric_collection(metrics: dict) -> "MetricCollection":
    from torchmetrics import MetricCollection

    return MetricCollection(metrics)


def mean_metric() -> "MeanMetric":
    """A running mean in which NaN stays NaN: a value that went wrong is reported, never averaged away
    (torchmetrics' default drops NaNs with a warning)."""
    from torchmetrics import MeanMetric

    return MeanMetric(nan_strategy="disable")


def sum_metric() -> "SumMetric":
    """A running sum in which NaN stays NaN (see ``mean_metric``)."""
    from torchmetrics import SumMetric

    return SumMetric(nan_strategy="disable")

from .batches import Batch


class Objective(nn.Module):
    """Turns a model's outputs on a batch into a loss (training) and metrics (evaluation).

    ``primary`` names the metric that reports and model selection use; ``higher_is_better`` says
    which way it points. Metrics are kept per split ("val", "test", "test_long", ...).
    """

    primary = "accuracy"
    higher_is_better = True
    batch: type = Batch  # the batch layout this objective reads

    def __init__(self, task, tokenizer, cfg: dict):
        super().__init__()
        self.task, self.tokenizer, self.cfg = task, tokenizer, cfg
        self.splits = nn.ModuleDict()

    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def metrics(self, split: str, device) -> MetricCollection:
        if split not in self.splits:
            self.splits[split] = self.make_metrics().to(device)
        return self.splits[split]

    def loss(self, model, batch: dict) -> torch.Tensor:
        """The training loss of ``model`` (a suite LightningModule) on ``batch``."""
        raise NotImplementedError

    def evaluate(self, model, batch: dict, split: str) -> None:
        """Update the metrics of ``split`` with ``batch``."""
        raise NotImplementedError

    def compute(self, split: str) -> dict[str, float]:
        """The metrics of ``split`` as plain floats; resets them."""
        if split not in self.splits:
            return {}
        values = self.splits[split].compute()
        self.splits[split].reset()
        return {k: float(v) for k, v in values.items() if v.numel() == 1}

    def artifacts(self, split: str) -> dict:
        """JSON-able extras for the run directory (a confusion matrix, ...); computed before ``compute``."""
        return {}
