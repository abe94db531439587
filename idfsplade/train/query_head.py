"""Training that pays only for what the query reads: the document head over the batch's query columns.

An inference-free query is ``BoW ⊙ idf`` (or a binary BoW): it is non-zero only at its own tokens. The
ranking loss ``Σ_j q_j · d_j`` therefore reads each document vector only at the union ``C`` of the
batch's query tokens — about 40 of 30,522 columns for 2 queries — and a document weight outside ``C``
gets no gradient from it. So the document logits are computed only there,
``transform(h) @ E[C]ᵀ + bias[C]``, max-pooled and ``log1p(relu(·))`` as before: for the ranking loss
this is exact (same loss, same gradient for every parameter), and the 30,522-column vocabulary
projection, ~90% of a SPLADE-tiny step, shrinks to |C| columns.

The FLOPS regulariser reads every column. :class:`QueryVocabSpladeLoss` offers three ways to pay for it
when λ > 0 (``loss.head`` in the run config):

- ``full``: the whole head on every step, as sentence-transformers' ``SpladeLoss`` does (the reference).
- ``sample``: a set ``E`` of columns exactly — the query columns ``C`` and every token of the batch's
  documents, where SPLADE puts most of a document's weight (on SPLADE-tiny about half the FLOPS mass
  sits on the ten strongest input tokens) — plus ``m`` columns drawn uniformly without replacement from
  the other ``V − |E|``, scaled by ``(V − |E|) / m``. With ``a_j = mean_i d_ij`` (the batch's mean
  document weight of column j), ``FLOPS = Σ_j a_j²`` and the estimate
  ``Σ_{j∈E} a_j² + (V−|E|)/m · Σ_{j∈S} a_j²`` is unbiased: each other column is in ``S`` with
  probability ``m / (V−|E|)``. Its gradient is unbiased too (the same linear combination). Sampling
  uniformly over *all* columns would be unbiased as well, but a document has ~100–300 non-zeros in
  30,522 columns, so such a sample mostly misses them (variance, measured: the mean of 6 draws was a
  quarter of the true value).
- ``periodic``: the query head on most steps and the whole head every ``N``-th step, with λ·N on that
  step so the regulariser keeps its average strength.

The IDF-aware property is untouched: IDF is in the query vector, hence in the matching; the FLOPS
term on documents weighs every column alike. Binary queries (plain SPLADE-doc) read the same columns.

Library check (sentence-transformers 6.2): ``SpladeLoss.forward`` embeds every column through the full
model (``embed_columns``); ``FlopsLoss``/``SpladePooling`` have no column subset, and the trainer calls
``loss(features, labels)``, so the subset lives in this ``SpladeLoss`` subclass. The column restriction
is done by swapping the MLM's output projection (``get_output_embeddings()``: BERT's ``decoder``,
DistilBERT's ``vocab_projector``, …) for a column view during the forward, so the model's own head
transform runs unchanged for any architecture.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from sentence_transformers.base.losses.merged_forward import merge_feature_batches
from sentence_transformers.sparse_encoder.losses import SpladeLoss
from torch import Tensor, nn

from idfsplade.errors import InputError
from idfsplade.model.inference_free import document_modules

HEADS = ("full", "query", "sample", "periodic")


class ColumnSubset(nn.Module):
    """``x @ W[cols]ᵀ + b[cols]``: a view of a vocabulary projection on some columns (gradients flow
    into the full ``W`` and ``b`` at those rows)."""

    def __init__(self, projection: nn.Linear, columns: Tensor) -> None:
        super().__init__()
        self.projection = projection
        self.columns = columns

    def forward(self, hidden: Tensor) -> Tensor:
        bias = self.projection.bias[self.columns] if self.projection.bias is not None else None
        return F.linear(hidden, self.projection.weight[self.columns], bias)


def _projection_owner(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    projection = model.get_output_embeddings()
    if not isinstance(projection, nn.Linear):
        raise InputError(f"{type(model).__name__}: the output projection is not a Linear; use loss.head: full",
                         field="loss.head")
    for module in model.modules():
        for name, child in module.named_children():
            if child is projection:
                return module, name, projection
    raise InputError(f"{type(model).__name__}: output projection not found; use loss.head: full", field="loss.head")


@contextlib.contextmanager
def restricted_vocabulary(model: nn.Module, columns: Tensor) -> Iterator[None]:
    """Within the block, the masked LM's logits cover only ``columns`` (in that order)."""
    owner, name, projection = _projection_owner(model)
    setattr(owner, name, ColumnSubset(projection, columns))
    try:
        yield
    finally:
        setattr(owner, name, projection)


def splade_pool(logits: Tensor, attention_mask: Tensor) -> Tensor:
    """``log1p(relu(max over non-pad positions))`` with autograd (no in-place ops)."""
    masked = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, float("-inf"))
    return torch.log1p(torch.relu(masked.amax(dim=1)))


def query_columns(query: Tensor) -> Tensor:
    """Sorted union of the columns any query of the batch is non-zero at."""
    return torch.nonzero(query.abs().sum(dim=0)).flatten()


def sample_other_columns(vocab_size: int, exclude: Tensor, m: int, generator: torch.Generator | None = None
                         ) -> Tensor:
    """``m`` columns drawn uniformly without replacement from those not in ``exclude`` (all if fewer)."""
    keep = torch.ones(vocab_size, dtype=torch.bool)
    keep[exclude.cpu()] = False
    others = torch.nonzero(keep).flatten()
    if m >= len(others):
        return others
    return others[torch.randperm(len(others), generator=generator)[:m]].sort().values


def flops_estimate(docs: Tensor, n_exact: int, n_other: int) -> Tensor:
    """FLOPS from ``docs[:, :n_exact]`` (exact columns) and ``docs[:, n_exact:]`` (a uniform sample of
    the ``n_other`` remaining columns): ``Σ_exact a_j² + n_other / m · Σ_sample a_j²``."""
    squares = docs.mean(dim=0) ** 2
    exact, sample = squares[:n_exact], squares[n_exact:]
    m = sample.numel()
    return exact.sum() + (sample.sum() * (n_other / m) if m else 0.0)


class QueryVocabSpladeLoss(SpladeLoss):
    """``SpladeLoss`` (ranking loss + FLOPS on documents) with the document head restricted to the
    batch's query columns; ``head`` picks how the FLOPS term is paid for (module docstring)."""

    def __init__(self, model, loss: nn.Module, document_regularizer_weight: float,
                 document_regularizer_threshold: int | None = None, head: str = "sample",
                 sample_columns: int = 1024, full_every: int = 10, seed: int = 0) -> None:
        if head not in HEADS:
            raise InputError(f"head must be one of {list(HEADS)}, got {head!r}", field="loss.head")
        if document_regularizer_threshold is not None and head in ("query", "sample"):
            raise InputError("an l0 threshold counts every column of a document: use head full or periodic",
                             field="loss.head")
        pooling = document_modules(model)[1] if head != "full" else None
        if pooling is not None and (pooling.pooling_strategy, pooling.activation_function) != ("max", "relu"):
            raise InputError(f"the query-column head implements max pooling of log1p(relu); this model pools "
                             f"{pooling.pooling_strategy}/{pooling.activation_function}: use head full",
                             field="loss.head")
        with _without_root_warning("query_regularizer_weight is None"):
            super().__init__(model, loss, document_regularizer_weight=document_regularizer_weight,
                             query_regularizer_weight=None,
                             document_regularizer_threshold=document_regularizer_threshold)
        self.head, self.sample_columns, self.full_every, self.seed = head, sample_columns, full_every, seed
        # The optimizer step being computed. The trainer sets it (``set_step``) so that the column
        # sample and the periodic full step are functions of (seed, step): a resumed run draws exactly
        # what the uninterrupted one drew. Without a trainer, each training forward counts one step.
        self.step = 0
        self._external_step = False

    def set_step(self, step: int) -> None:
        self.step, self._external_step = step, True

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
                ) -> dict[str, Tensor]:
        features = list(sentence_features)
        step = self.step
        if self.model.training and not self._external_step:
            self.step += 1
        regularize = self.document_regularizer_weight > 0
        if self.head == "full" or (self.head == "periodic" and regularize and step % self.full_every == 0):
            losses = super().forward(features, labels)
            if self.head == "periodic":
                losses["document_regularizer_loss"] = losses["document_regularizer_loss"] * self.full_every
            return losses
        query = self.model(features[0])["sentence_embedding"]
        columns = query_columns(query)
        n_exact = len(columns)
        mlm, _ = document_modules(self.model)
        vocab_size = mlm.auto_model.get_output_embeddings().weight.shape[0]
        if regularize and self.head == "sample":
            doc_tokens = torch.cat([f["input_ids"][f["attention_mask"].bool()] for f in features[1:]])
            seen = torch.zeros(vocab_size, dtype=torch.bool, device=columns.device)
            seen[columns] = True
            document_only = torch.unique(doc_tokens[~seen[doc_tokens]])
            columns = torch.cat([columns, document_only])
            n_exact = len(columns)
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            sampled = sample_other_columns(vocab_size, columns, self.sample_columns, generator)
            columns = torch.cat([columns, sampled.to(columns.device)])
        docs = self._documents(mlm, features[1:], columns)
        losses = {}
        base = self.loss.compute_loss_from_embeddings([query[:, columns], *docs], labels)
        losses.update(base if isinstance(base, dict) else {"base_loss": base})
        if regularize and self.head == "sample":
            flops = flops_estimate(torch.cat(docs), n_exact, vocab_size - n_exact)
        else:  # head "query" (or periodic between full steps): the regulariser is off this step
            flops = torch.zeros((), device=query.device)
        losses["document_regularizer_loss"] = flops * self.document_regularizer_weight
        return losses

    @staticmethod
    def _documents(mlm, columns_features: list[dict[str, Tensor]], columns: Tensor) -> list[Tensor]:
        """Each candidate column's document vectors over ``columns``, in one merged forward when the
        columns pad alike (as ``embed_columns`` does)."""
        merged = merge_feature_batches(columns_features) if len(columns_features) > 1 else None
        batches = [merged] if merged is not None else columns_features
        with restricted_vocabulary(mlm.auto_model, columns):
            pooled = [splade_pool(mlm(dict(f))["token_embeddings"], f["attention_mask"]) for f in batches]
        if merged is not None:
            return list(pooled[0].reshape(len(columns_features), -1, pooled[0].shape[-1]).unbind(0))
        return pooled


@contextlib.contextmanager
def _without_root_warning(prefix: str):
    """Drop one root-logger warning that does not apply here. SpladeLoss warns through ``logging.warning``
    that no query regulariser is set ("fine in an inference-free set-up", which this always is); that
    call would also configure the root logger, after which bm25s' DEBUG lines reach the user. A
    NullHandler keeps ``basicConfig`` from running; the filter keeps the line from an app's own handlers."""
    root = logging.getLogger()
    null = logging.NullHandler()

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    root.addHandler(null)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        root.removeHandler(null)
