"""Classification: one label per sample (images, clips, texts, game outcomes)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .batches import ClassificationBatch
from .objective import Objective, metric_collection, mean_metric


def top_classes(probs: torch.Tensor, classes: list[str], top: int = 1) -> str:
    """(n_classes,) probabilities -> the ``top`` likeliest classes, one ``name<TAB>probability`` line each."""
    values, idx = probs.topk(max(1, min(top, len(classes))))
    return "\n".join(f"{classes[i]}\t{v:.4f}" for v, i in zip(values.tolist(), idx.tolist()))


class Classification(Objective):
    """Batches are ``ClassificationBatch`` (``label`` (B,)); the head returns (B, n_classes) logits.

    The task must define ``classes`` (list of names). Reports accuracy, macro accuracy and loss;
    the test confusion matrix goes to the run directory.
    """

    primary = "accuracy"
    batch = ClassificationBatch

    def __init__(self, task, tokenizer, cfg):
        super().__init__(task, tokenizer, cfg)
        self.n_classes = len(task.classes(tokenizer))
        self.label_smoothing = float(cfg.get("model", {}).get("label_smoothing", 0.0))

    def make_metrics(self):
        from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

        n = self.n_classes
        return metric_collection({
            "accuracy": MulticlassAccuracy(n, average="micro"),
            "macro_accuracy": MulticlassAccuracy(n, average="macro"),
            "loss": mean_metric(),
            "confusion": MulticlassConfusionMatrix(n),
        })

    def loss(self, model, batch):
        return F.cross_entropy(model(batch), batch["label"], label_smoothing=self.label_smoothing)

    def evaluate(self, model, batch, split):
        logits = model(batch)
        m = self.metrics(split, logits.device)
        m["accuracy"].update(logits, batch["label"])
        m["macro_accuracy"].update(logits, batch["label"])
        m["confusion"].update(logits, batch["label"])
        m["loss"].update(F.cross_entropy(logits, batch["label"]), weight=len(logits))

    def artifacts(self, split):
        if split not in self.splits or not self.splits[split]["confusion"].update_called:
            return {}
        return {"confusion_matrix": {
            "classes": list(self.task.classes(self.tokenizer)),
            "rows_true_cols_predicted": self.splits[split]["confusion"].compute().tolist(),
        }}
