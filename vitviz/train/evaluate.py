"""Evaluation: overall and per-class accuracy, confusion matrix and per-sample predictions.

Per-sample predictions let two variants be compared sample by sample (McNemar, lists of images one
gets right and the other wrong). The model's train/eval mode is restored afterwards.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageDataset
from ..metrics import confusion_matrix
from .batches import DeviceImages, Normalize
from ..device import autocast, resolve_device


MAX_STORED_PREDICTIONS = 50_000  # per-sample predictions go into checkpoint metadata up to this many


def samples_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256(labels.cpu().numpy().astype(np.int64).tobytes())
    digest.update(images.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class EvalResult:
    classes: list[str]
    labels: np.ndarray          # (N,) true labels
    predictions: np.ndarray     # (N,) predicted labels
    confidence: np.ndarray      # (N,) softmax probability of the prediction
    confusion: np.ndarray       # (K, K) rows = true class, columns = predicted class
    samples_sha256: str = ""    # fingerprint of the evaluated images + labels (same samples <=> same hash)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean()) if len(self.labels) else float("nan")

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class (nan where the class has no samples)."""
        support = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / np.maximum(support, 1), np.nan)

    def as_metrics(self) -> dict:
        """JSON-ready metrics for a checkpoint's metadata."""
        per_class = self.per_class_accuracy
        return {
            "test_accuracy": self.accuracy,
            "per_class_accuracy": {c: (None if np.isnan(a) else float(a)) for c, a in zip(self.classes, per_class)},
            "confusion_matrix": self.confusion.tolist(),
            "num_test_samples": int(len(self.labels)),
            **({"test_set_sha256": self.samples_sha256, "test_labels": self.labels.tolist(),
                "test_predictions": self.predictions.tolist()} if len(self.labels) <= MAX_STORED_PREDICTIONS else {}),
        }


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: ImageDataset | DeviceImages, *, mean, std, img_size: int,
             batch_size: int = 500, device=None) -> EvalResult:
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    data = dataset if isinstance(dataset, DeviceImages) else DeviceImages(dataset, device, img_size)
    normalize = Normalize(mean, std, device)
    was_training = model.training
    model.eval()
    predictions, confidence = [], []
    try:
        for start in range(0, len(data), batch_size):
            images, _ = data.take(torch.arange(start, min(start + batch_size, len(data))))
            with autocast(device):
                logits = model(normalize(images))
            probs = logits.float().softmax(-1)
            conf, pred = probs.max(-1)
            predictions.append(pred.cpu())
            confidence.append(conf.cpu())
    finally:
        model.train(was_training)
    labels = data.labels.cpu().numpy()
    preds = torch.cat(predictions).numpy() if predictions else np.zeros(0, dtype=np.int64)
    confs = torch.cat(confidence).numpy() if confidence else np.zeros(0, dtype=np.float32)
    return EvalResult(list(data.classes), labels, preds, confs, confusion_matrix(labels, preds, data.num_classes),
                      samples_fingerprint(data.images, data.labels))
