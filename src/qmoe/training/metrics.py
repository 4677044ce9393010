"""Classification metrics from a confusion matrix in torch (fast enough to run every epoch).

Matches scikit-learn's accuracy_score and f1_score(average="macro"/"weighted", zero_division=0),
checked in tests/test_metrics.py; macro-F1 averages over the classes present in y_true or y_pred,
as sklearn does when `labels` is not given.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Scores(NamedTuple):
    accuracy: float
    macro_f1: float
    weighted_f1: float


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    """(n,), (n,) int -> (c, c) int64 counts, rows = true class, columns = predicted class."""
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def scores(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Scores:
    """Accuracy, macro-F1 and support-weighted F1 of integer predictions."""
    if y_true.numel() == 0:
        raise ValueError("cannot score an empty set of predictions")
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diag()
    support = cm.sum(dim=1)  # (c,) true counts
    predicted = cm.sum(dim=0)  # (c,) predicted counts
    denom = support + predicted
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    present = denom > 0  # sklearn: labels seen in y_true or y_pred
    macro = f1[present].mean().item()
    weighted = (f1 * support).sum().item() / support.sum().item()
    return Scores(tp.sum().item() / support.sum().item(), macro, weighted)
