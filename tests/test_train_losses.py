"""Losses and targets of training, each against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback
from sentence_transformers.sparse_encoder.losses import FlopsLoss
from transformers import TrainerControl, TrainerState

from idfsplade.train.ensemble import ensemble_targets, minmax_per_row
from idfsplade.train.config import LossConfig
from idfsplade.train.losses import EnsembleDistillationLoss, build_loss, info_nce, kl_distillation, margin_mse


def test_minmax_per_row_and_constant_row():
    scores = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(minmax_per_row(scores), [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])


def test_ensemble_is_weighted_mean_of_minmax_times_scale():
    dense = np.array([[0.2, 0.8, 0.5]])  # min-max -> 0, 1, 0.5
    bm25 = np.array([[30.0, 10.0, 20.0]])  # min-max -> 1, 0, 0.5
    np.testing.assert_allclose(ensemble_targets([dense, bm25], [1, 1], 10), [[5.0, 5.0, 5.0]])
    np.testing.assert_allclose(ensemble_targets([dense, bm25], [3, 1], 30), [[7.5, 22.5, 15.0]], rtol=1e-6)


def test_kl_matches_hand_computation():
    student = torch.tensor([[2.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0]])  # uniform target
    p_s = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    expected = sum(0.5 * (math.log(0.5) - math.log(p)) for p in p_s)
    assert kl_distillation(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    # temperature T: scores divided by T, loss multiplied by T² (as SparseDistillKLDivLoss)
    half = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    expected_t2 = 4 * sum(0.5 * (math.log(0.5) - math.log(p)) for p in half)
    assert kl_distillation(student, teacher, student_temperature=2.0).item() == pytest.approx(expected_t2, rel=1e-6)
    assert kl_distillation(teacher + 3.0, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_margin_mse_and_info_nce_hand_values():
    student = torch.tensor([[3.0, 1.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0, 1.0]])
    # margins student (2, 3), teacher (1, 0): ((2-1)² + (3-0)²) / 2 = 5
    assert margin_mse(student, teacher).item() == pytest.approx(5.0)
    expected = -(3.0 - math.log(math.exp(3) + math.exp(1) + math.exp(0)))
    assert info_nce(student, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_flops_and_l0_mask_values():
    docs = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    # mean over docs (2, 1, 0) -> 4 + 1 = 5
    assert FlopsLoss(None).compute_loss_from_embeddings(docs).item() == pytest.approx(5.0)
    # l0 mask: only docs with > 1 active dims -> row 0 only; mean (0.5, 1, 0) -> 0.25 + 1
    assert FlopsLoss(None, threshold=1).compute_loss_from_embeddings(docs).item() == pytest.approx(1.25)


def test_quadratic_warmup_of_lambda():
    loss = build_loss(torch.nn.Linear(1, 1), None, LossConfig(objective="info_nce", scope="own_list",
                                                             flops_weight=1e-3, head="full"))
    callback = SpladeRegularizerWeightSchedulerCallback(loss, "quadratic", warmup_ratio=0.5)
    state = TrainerState(max_steps=20)
    callback.on_train_begin(None, state, TrainerControl())
    seen = []
    for step in (0, 5, 10, 15):
        state.global_step = step
        callback.on_step_begin(None, state, TrainerControl())
        seen.append(loss.document_regularizer_weight)
    np.testing.assert_allclose(seen, [0.0, 1e-3 * 0.25, 1e-3, 1e-3])


class _FixedScorer:
    def __init__(self, targets: np.ndarray) -> None:
        self.value = targets

    def targets(self, indices, scope):
        return self.value


def _idf_aware_gradients(idf: torch.Tensor):
    """Gradients of the ranking part and of FLOPS on the doc weights, with query = BoW ⊙ idf."""
    vocab = len(idf)
    query = idf.clone().unsqueeze(0)  # every token present, weighted by idf
    pos = torch.full((1, vocab), 1.0, requires_grad=True)
    neg = torch.full((1, vocab), 1.0, requires_grad=True)
    ranking = EnsembleDistillationLoss(None, _FixedScorer(np.array([[10.0, 0.0]])), "kl", "own_list")
    loss = build_loss(None, None, LossConfig(scope="own_list", flops_weight=1.0, head="full"))
    loss.loss = ranking
    rank_loss = ranking.compute_loss_from_embeddings([query, pos, neg], torch.tensor([0]))["kl_loss"]
    (rank_grad,) = torch.autograd.grad(rank_loss, pos)
    flops_loss = loss.document_regularizer.compute_loss_from_embeddings(torch.cat([pos, neg]))
    (flops_grad,) = torch.autograd.grad(flops_loss, pos)
    return rank_grad[0], flops_grad[0]


def test_idf_enters_matching_not_regularizer():
    idf = torch.tensor([0.1, 1.0, 4.0])
    rank_grad, flops_grad = _idf_aware_gradients(idf)
    # ranking gradient on token j is proportional to idf_j (rare tokens pushed up the most) ...
    np.testing.assert_allclose((rank_grad / rank_grad[1]).numpy(), idf.numpy(), rtol=1e-5)
    assert (rank_grad < 0).all()  # descending the loss raises the positive's weights
    # ... while FLOPS pulls every token alike: d/dw_j of Σ (mean w)² = 2·mean_j / n_docs = 1
    np.testing.assert_allclose(flops_grad.numpy(), [1.0, 1.0, 1.0])
    # with a binary query (plain SPLADE-doc) the ranking gradient is the same for every token
    binary_grad, _ = _idf_aware_gradients(torch.ones(3))
    np.testing.assert_allclose(binary_grad.numpy(), binary_grad[0].item(), rtol=1e-6)


def test_in_batch_scores_are_row_major_over_all_candidates():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # positives of example 0 and 1
    c1 = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    in_batch = EnsembleDistillationLoss(None, None, "kl", "in_batch").student_scores(q, [c0, c1])
    # columns: ex0 cand0, ex0 cand1, ex1 cand0, ex1 cand1
    np.testing.assert_allclose(in_batch.numpy(), [[1, 5, 3, 7], [2, 6, 4, 8]])
    own = EnsembleDistillationLoss(None, None, "kl", "own_list").student_scores(q, [c0, c1])
    np.testing.assert_allclose(own.numpy(), [[1, 5], [4, 8]])


@pytest.mark.parametrize("scope", ["in_batch", "own_list"])
def test_student_scores_and_teacher_targets_order_candidates_alike(scope):
    """The invariant between the two sides of the loss, on a hand-built batch: column c of the student
    matrix and column c of the teacher targets are the same (query, candidate) pair. Each pair gets a
    distinct value v(q, p) = 10·q + p; the student's embeddings and a teacher's vectors both encode it,
    through the two code paths (the loss's stacking of candidate columns, the scorer's flattening of
    example candidate lists), so any mismatch in ordering shows as different matrices."""
    from idfsplade.train.examples import Example, ExampleSet
    from idfsplade.train.scorer import EnsembleScorer, TeacherMember
    from idfsplade.train.teachers import CachedVectors

    passages = {f"p{i}": f"text {i}" for i in range(7)}
    examples = [Example("q0", "a", ["p3", "p0", "p5"]), Example("q1", "b", ["p1", "p6", "p2"]),
                Example("q2", "c", ["p4", "p2", "p0"])]
    qids = ["q0", "q1", "q2"]

    def value(q: int, p: int) -> float:
        return 10.0 * q + p

    teacher_queries = CachedVectors(np.eye(3), qids)  # one-hot per query
    teacher_passages = CachedVectors(np.array([[value(q, p) for q in range(3)] for p in range(7)]), list(passages))
    scorer = EnsembleScorer(ExampleSet(examples, passages),
                            [TeacherMember("t", 1.0, teacher_queries, teacher_passages)], scale=1.0)
    batch = [2, 0]  # the batch's example indices (the label column), deliberately not in order
    (raw,) = scorer.raw_scores(batch, scope)
    # the student: query embedding one-hot over queries, candidate column c holds each example's c-th passage
    query = torch.eye(3, dtype=torch.float64)[[int(examples[i].qid[1]) for i in batch]]
    candidates = [torch.tensor([[value(q, int(examples[i].candidates[c][1])) for q in range(3)] for i in batch],
                               dtype=torch.float64) for c in range(3)]
    student = EnsembleDistillationLoss(None, scorer, "kl", scope).student_scores(query, candidates)
    np.testing.assert_array_equal(student.numpy(), raw)
    expected_first_row = [24, 22, 20, 23, 20, 25] if scope == "in_batch" else [24, 22, 20]
    np.testing.assert_array_equal(raw[0], expected_first_row)  # q2 against p4, p2, p0 (, p3, p0, p5)
    np.testing.assert_array_equal(np.argsort(scorer.targets(batch, scope), axis=1, kind="stable"),
                                  np.argsort(student.numpy(), axis=1, kind="stable"))
