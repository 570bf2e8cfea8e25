"""Metrics shared by the modalities' eval tasks and validation steps."""

from __future__ import annotations

import torch


def answer_exact_match(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample 1.0 when every answer token is the argmax of the logits one step before it, else 0.0."""
    pred = logits[:, :-1].argmax(-1)
    target = input_ids[:, 1:]
    mask = answer_mask[:, 1:]
    wrong = (pred != target) & mask
    return (~wrong.any(dim=1)).float()


def confusion_matrix(labels, predictions, n_classes: int):
    """(n_classes, n_classes) counts, rows the true class, columns the predicted one."""
    import numpy as np

    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return m


def matthews_corrcoef(matrix) -> float:
    """Gorodkin's multiclass MCC from a confusion matrix (the binary MCC for 2 × 2); 0 when undefined."""
    import numpy as np

    c = np.asarray(matrix, dtype=np.float64)
    t, p, correct, n = c.sum(1), c.sum(0), np.trace(c), c.sum()
    denominator = np.sqrt((n ** 2 - (p ** 2).sum()) * (n ** 2 - (t ** 2).sum()))
    return float((correct * n - (t * p).sum()) / denominator) if denominator > 0 else 0.0


def binary_auroc(labels, scores) -> float:
    """The probability that a positive scores above a negative (ties count ½), by ranks: Mann–Whitney U."""
    import numpy as np

    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        raise ValueError(f"AUROC needs both classes; got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(labels, predictions, n_classes: int, class_names: list[str] | None = None,
                           positive_scores=None) -> dict:
    """accuracy, MCC, macro F1, per-class precision / recall / F1 / n, the confusion matrix, and (binary, with the
    positive class's scores) AUROC."""
    import numpy as np

    m = confusion_matrix(labels, predictions, n_classes)
    names = class_names or [str(i) for i in range(n_classes)]
    per_class, f1s = {}, []
    for i, name in enumerate(names):
        tp, fp, fn = m[i, i], m[:, i].sum() - m[i, i], m[i].sum() - m[i, i]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "n": int(m[i].sum())}
        f1s.append(f1)
    out = {"accuracy": float(np.trace(m) / m.sum()), "mcc": matthews_corrcoef(m), "f1": float(np.mean(f1s)),
           "n": int(m.sum()), "per_class": per_class, "confusion_matrix": m.tolist()}
    if n_classes == 2 and positive_scores is not None:
        out["auroc"] = binary_auroc(labels, positive_scores)
    return out


def regression_metrics(targets, predictions) -> dict:
    """Pearson and Spearman correlations and the mean squared error."""
    import numpy as np

    y, p = np.asarray(targets, dtype=np.float64), np.asarray(predictions, dtype=np.float64)

    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        d = np.sqrt((a ** 2).sum() * (b ** 2).sum())
        return float((a * b).sum() / d) if d > 0 else 0.0

    def rank(a):  # average ranks over ties
        order = np.argsort(a, kind="mergesort")
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=np.float64)
        for value in np.unique(a):
            tied = a == value
            r[tied] = r[tied].mean()
        return r

    return {"pearson": pearson(y, p), "spearman": pearson(rank(y), rank(p)), "mse": float(((y - p) ** 2).mean()),
            "n": int(len(y))}
