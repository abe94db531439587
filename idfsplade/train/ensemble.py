"""Heterogeneous ensemble targets: each teacher's scores min-max normalised per query, weighted mean, × S.

Why normalise: a dense cosine (≈0.1–0.8), a SPLADE dot product (≈5–40) and BM25 (≈0–60) live on
different scales; min-max per query puts every teacher on [0, 1] over the *same* candidate list, so
the mean weighs their rankings, not their units. The scale ``S`` (paper: 10 pre-training, 30
fine-tuning) then sets how peaked the softmax target is.
"""

from __future__ import annotations

import numpy as np

from idfsplade.errors import InputError


def minmax_per_row(scores: np.ndarray) -> np.ndarray:
    """Map each row to [0, 1]; a constant row (teacher cannot tell candidates apart) becomes all 0."""
    scores = np.asarray(scores, dtype=np.float64)
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)


def ensemble_targets(per_teacher: list[np.ndarray], weights: list[float], scale: float) -> np.ndarray:
    """``scale × Σ_k w_k · minmax(scores_k) / Σ_k w_k`` for score matrices of equal shape (queries × candidates)."""
    if not per_teacher or len(per_teacher) != len(weights):
        raise InputError("need one weight per teacher and at least one teacher", field="teachers.members")
    total = float(sum(weights))
    if total <= 0:
        raise InputError("teacher weights must sum to a positive number", field="teachers.members.weight")
    mixed = sum(w * minmax_per_row(s) for w, s in zip(weights, per_teacher)) / total
    return (scale * mixed).astype(np.float32)
