"""Ranking losses of the student against the ensemble targets, and the regularizer wiring.

The *IDF-aware* part of the method needs no code of its own here: the student's query vector is
whatever the model's query route emits, ``BoW ⊙ idf`` for the inference-free encoder (binary BoW
for the plain SPLADE-doc ablation, see :func:`idfsplade.train.student.build_student`). The ranking
score ``Σ_j q_j · d_j`` therefore sends a gradient ``∝ idf_j`` to document weight ``d_j``, while the
FLOPS regularizer, applied to document vectors only, pulls every ``d_j`` alike: low-IDF tokens lose,
informative ones survive.

Library check (sentence-transformers 6.2 ``sparse_encoder.losses``): ``SpladeLoss`` (base loss +
``FlopsLoss`` on documents, optional ℓ0 ``threshold``, separate logging) and
``SpladeRegularizerWeightSchedulerCallback`` (quadratic λ warm-up) are reused as they are.
``SparseDistillKLDivLoss`` / ``SparseMarginMSELoss`` / ``SparseMultipleNegativesRankingLoss`` take
teacher scores as a fixed per-row ``label`` over the row's own columns; the paper's targets are
per *batch* (each query against every candidate in it) and come from several teachers, so the
objectives below are the same formulas (KL × T² as ``SparseDistillKLDivLoss``) fed by an
:class:`~idfsplade.train.scorer.EnsembleScorer` from the example ids the batch carries as labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sentence_transformers.sparse_encoder.losses import SpladeLoss
from torch import Tensor, nn

from idfsplade.errors import InputError
from idfsplade.train.config import LossConfig
from idfsplade.train.query_head import QueryVocabSpladeLoss

OBJECTIVES = ("kl", "margin_mse", "info_nce")
SCOPES = ("in_batch", "own_list")


def kl_distillation(student: Tensor, teacher: Tensor, student_temperature: float = 1.0,
                    teacher_temperature: float = 1.0) -> Tensor:
    """``KL(softmax(t/T_t) ‖ softmax(s/T_s)) · T_s²``, mean over queries (rows)."""
    log_p_student = torch.log_softmax(student / student_temperature, dim=1)
    p_teacher = torch.softmax(teacher.detach() / teacher_temperature, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * student_temperature ** 2


def margin_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean over (query, negative) of ``((s⁺ − s⁻) − (t⁺ − t⁻))²``; column 0 is the positive."""
    student_margin = student[:, :1] - student[:, 1:]
    teacher_margin = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(student_margin, teacher_margin.detach())


def info_nce(student: Tensor, positive_column: Tensor, temperature: float = 1.0) -> Tensor:
    """Cross-entropy of the positive among the candidates (teacher-free contrastive baseline)."""
    return F.cross_entropy(student / temperature, positive_column)


class EnsembleDistillationLoss(nn.Module):
    """The ranking part of the loss, for ``SpladeLoss(loss=...)``.

    Columns are ``[query, candidate_0 (positive), candidate_1, ...]``; ``labels`` are the example
    indices (the data set's ``label`` column), from which ``scorer`` produces the teacher targets.
    ``scope="in_batch"`` scores each query against all ``B × n`` candidates of the batch (the
    paper); ``"own_list"`` against its own ``n``.
    """

    def __init__(self, model: nn.Module, scorer, objective: str = "kl", scope: str = "in_batch",
                 student_temperature: float = 1.0, teacher_temperature: float = 1.0) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}", field="loss.objective")
        if scope not in SCOPES:
            raise InputError(f"scope must be one of {list(SCOPES)}, got {scope!r}", field="loss.scope")
        if objective == "margin_mse" and scope == "in_batch":
            raise InputError("margin_mse compares a query's own positive and negatives: use scope own_list",
                             field="loss.scope")
        self.model = model
        self.scorer = scorer
        self.objective, self.scope = objective, scope
        self.student_temperature, self.teacher_temperature = student_temperature, teacher_temperature

    def student_scores(self, query: Tensor, candidates: list[Tensor]) -> Tensor:
        """``(B, B·n)`` in-batch (row-major: example b's candidate c at ``b·n + c``) or ``(B, n)``."""
        stacked = torch.stack(candidates, dim=1)  # (B, n, V)
        if self.scope == "in_batch":
            return query @ stacked.flatten(0, 1).T
        return torch.einsum("bv,bnv->bn", query, stacked)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> dict[str, Tensor]:
        query, candidates = embeddings[0], embeddings[1:]
        student = self.student_scores(query, candidates)
        n = len(candidates)
        positive = torch.arange(query.shape[0], device=student.device) * (n if self.scope == "in_batch" else 0)
        if self.objective == "info_nce":
            return {"info_nce_loss": info_nce(student, positive, self.student_temperature)}
        teacher = torch.as_tensor(self.scorer.targets(labels.tolist(), self.scope), device=student.device,
                                  dtype=student.dtype)
        if self.objective == "kl":
            return {"kl_loss": kl_distillation(student, teacher, self.student_temperature, self.teacher_temperature)}
        return {"margin_mse_loss": margin_mse(student, teacher)}

    def forward(self, sentence_features, labels: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError("used inside SpladeLoss, which embeds the columns and calls "
                                  "compute_loss_from_embeddings")


def build_loss(model: nn.Module, scorer, config: LossConfig, seed: int = 0) -> SpladeLoss:
    """Ranking loss + FLOPS on document vectors only (queries are static, nothing to regularise), as the
    run config's ``loss`` section (:class:`~idfsplade.train.config.LossConfig`) sets them.

    ``head`` (:mod:`idfsplade.train.query_head`): ``full`` is sentence-transformers' ``SpladeLoss`` as
    is; ``query``/``sample``/``periodic`` compute document logits only at the batch's query columns
    (exact for the ranking loss) and differ in how the FLOPS term is paid for when λ > 0.
    """
    ranking = EnsembleDistillationLoss(model, scorer, config.objective, config.scope, config.student_temperature,
                                       config.teacher_temperature)
    return QueryVocabSpladeLoss(model, ranking, config.flops_weight, document_regularizer_threshold=config.l0_threshold,
                                head=config.head, sample_columns=config.flops_sample_columns,
                                full_every=config.flops_full_every, seed=seed)
