"""The query-vocabulary document head: exact for the ranking loss (loss and every parameter gradient
equal to the full head's), and an unbiased FLOPS estimate when λ > 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idfsplade.errors import InputError
from idfsplade.train.config import LossConfig
from idfsplade.train.losses import EnsembleDistillationLoss, build_loss
from idfsplade.train.query_head import (
    QueryVocabSpladeLoss,
    flops_estimate,
    query_columns,
    restricted_vocabulary,
    sample_other_columns,
)
from idfsplade.train.student import build_student

QUERIES = ["computer based information retrieval", "indexing of documents by machine"]
PASSAGES = [["automatic indexing of technical documents", "library catalog cards for books"],
            ["machine translation of russian texts", "information retrieval systems evaluated on tests"]]


class FixedTargets:
    """A scorer whose in-batch targets are a fixed matrix (the loss only needs ``targets``)."""

    def __init__(self, n_queries: int, n_candidates: int) -> None:
        rng = np.random.default_rng(0)
        self.matrix = rng.uniform(0, 30, size=(n_queries, n_queries * n_candidates))

    def targets(self, indices, scope):
        return self.matrix


@pytest.fixture()
def student(splade_tiny_path, adi_idf):
    torch.manual_seed(0)
    model = build_student(splade_tiny_path, adi_idf, max_seq_length=32)
    model.train()
    return model


def _features(model):
    query = model.preprocess(QUERIES, task="query")
    query["task"] = "query"
    columns = [query]
    for c in range(2):
        docs = model.preprocess([p[c] for p in PASSAGES], task="document")
        docs["task"] = "document"
        columns.append(docs)
    return columns


def _loss_and_grads(model, head: str, flops_weight: float = 0.0, weighting=None):
    loss_fn = build_loss(model, FixedTargets(2, 2), LossConfig(flops_weight=flops_weight, student_temperature=3.0,
                                                               head=head))
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks on both paths (they draw in the same order)
    losses = loss_fn(_features(model), torch.tensor([0, 1]))
    total = sum(losses.values())
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return total.detach(), losses, grads


@pytest.mark.parametrize("head", ["query", "sample"])
def test_query_head_equals_full_head_loss_and_gradients(student, head):
    full_loss, _, full_grads = _loss_and_grads(student, "full")
    loss, _, grads = _loss_and_grads(student, head)  # λ = 0: "sample" draws no extra columns
    assert loss.item() == pytest.approx(full_loss.item(), abs=1e-6)
    assert set(grads) == set(full_grads) and len(grads) > 10
    for name, grad in full_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    # the word-embedding gradient is non-zero only at the query rows (tied decoder) and the inputs' tokens
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_restricted_vocabulary_gives_the_full_logits_columns(student):
    from idfsplade.model.inference_free import document_modules

    mlm, _ = document_modules(student)
    features = student.preprocess(["a short text about retrieval"], task="document")
    student.eval()
    with torch.no_grad():
        full = mlm(dict(features))["token_embeddings"]
        cols = torch.tensor([5, 2000, 7592, 30000])
        with restricted_vocabulary(mlm.auto_model, cols):
            part = mlm(dict(features))["token_embeddings"]
    assert part.shape[-1] == 4
    torch.testing.assert_close(part, full[..., cols], atol=1e-5, rtol=1e-5)
    assert mlm.auto_model.get_output_embeddings().weight.shape[0] == 30522  # restored


def test_query_columns_are_the_union_of_query_tokens():
    q = torch.tensor([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])
    assert query_columns(q).tolist() == [1, 3]


def test_flops_estimate_is_unbiased():
    """The mean of the estimator over every possible sample equals the exact FLOPS (by enumeration of
    the draws' inclusion probabilities), and a Monte Carlo mean of the sampler converges to it."""
    rng = np.random.default_rng(0)
    docs = torch.tensor(rng.uniform(0, 2, size=(6, 40)) * (rng.random((6, 40)) < 0.3), dtype=torch.float64)
    exact = float((docs.mean(0) ** 2).sum())
    query_cols = torch.tensor([3, 17, 21])
    estimates = []
    generator = torch.Generator().manual_seed(1)
    for _ in range(4000):
        others = sample_other_columns(40, query_cols, 5, generator)
        assert len(set(others.tolist()) & {3, 17, 21}) == 0 and len(others) == 5
        cols = torch.cat([query_cols, others])
        estimates.append(float(flops_estimate(docs[:, cols], 3, 37)))
    assert np.mean(estimates) == pytest.approx(exact, rel=0.02)
    # all other columns sampled: the estimate is exact
    everything = torch.cat([query_cols, sample_other_columns(40, query_cols, 100)])
    assert float(flops_estimate(docs[:, everything], 3, 37)) == pytest.approx(exact, rel=1e-12)


def test_sample_head_regulariser_tracks_the_full_flops(student):
    torch.manual_seed(0)
    _, full, _ = _loss_and_grads(student, "full", flops_weight=1.0)
    values = [float(_loss_and_grads(student, "sample", flops_weight=1.0)[1]["document_regularizer_loss"])
              for _ in range(6)]
    assert np.mean(values) == pytest.approx(float(full["document_regularizer_loss"]), rel=0.15)


def test_periodic_head_runs_the_full_head_every_n_steps_with_scaled_weight(student):
    loss_fn = build_loss(student, FixedTargets(2, 2), LossConfig(flops_weight=1.0, head="periodic", flops_full_every=3))
    full_fn = build_loss(student, FixedTargets(2, 2), LossConfig(flops_weight=1.0, head="full"))

    def regulariser(fn) -> float:
        torch.manual_seed(1)  # the same dropout masks
        return float(fn(_features(student), torch.tensor([0, 1]))["document_regularizer_loss"])

    reference = regulariser(full_fn)
    seen = [regulariser(loss_fn) for _ in range(4)]
    assert seen[0] == pytest.approx(3 * reference, rel=1e-5) and seen[3] == pytest.approx(3 * reference, rel=1e-5)
    assert seen[1] == seen[2] == 0.0


def test_l0_threshold_needs_every_column(student):
    ranking = EnsembleDistillationLoss(student, FixedTargets(2, 2))
    with pytest.raises(InputError, match="l0 threshold"):
        QueryVocabSpladeLoss(student, ranking, 1.0, document_regularizer_threshold=10, head="sample")
