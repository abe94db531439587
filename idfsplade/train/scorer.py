"""Teacher targets for a batch: the ensemble of siamese teachers over the batch's candidates.

A batch carries only example indices; :class:`EnsembleScorer` turns them into the
``(queries × candidates)`` target matrix, in the same row-major candidate order the loss uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idfsplade.train.ensemble import ensemble_targets
from idfsplade.train.examples import ExampleSet
from idfsplade.train.teachers import CachedVectors, OnTheFlyVectors, Teacher, VectorSource, dot_scores


@dataclass
class TeacherMember:
    """One teacher of the ensemble with its weight and where its vectors come from."""

    name: str
    weight: float
    queries: VectorSource
    passages: VectorSource


class EnsembleScorer:
    """``targets(example_indices, scope)`` → min-max-per-teacher, weighted-mean, × ``scale`` targets."""

    def __init__(self, examples: ExampleSet, members: list[TeacherMember], scale: float) -> None:
        self.examples = examples
        self.members = members
        self.scale = scale

    @classmethod
    def build(cls, examples: ExampleSet, teachers: list[tuple[Teacher, float]], scale: float,
              cache_dir: Path | None) -> EnsembleScorer:
        """With ``cache_dir`` every teacher encodes all queries and passages once (cached on disk);
        without, vectors are encoded on the fly for each batch."""
        members = []
        for teacher, weight in teachers:
            if cache_dir is None:
                q = OnTheFlyVectors(teacher, examples.queries, "query")
                p = OnTheFlyVectors(teacher, examples.passages, "passage")
            else:
                folder = cache_dir / teacher.name.replace(":", "-").replace("/", "-")
                q = CachedVectors.load_or_encode(teacher, examples.queries, "query", folder / "queries")
                p = CachedVectors.load_or_encode(teacher, examples.passages, "passage", folder / "passages")
            members.append(TeacherMember(teacher.name, weight, q, p))
        return cls(examples, members, scale)

    def raw_scores(self, indices: list[int], scope: str) -> list[np.ndarray]:
        """Each teacher's unnormalised scores over the candidate lists of ``indices``."""
        batch = [self.examples.examples[i] for i in indices]
        qids = [e.qid for e in batch]
        n = len(batch[0].candidates)
        flat = [c for e in batch for c in e.candidates]
        out = []
        for member in self.members:
            q = member.queries.get(qids)
            p = member.passages.get(flat)
            full = dot_scores(q, p)  # (B, B·n)
            if scope == "own_list":
                full = np.stack([full[b, b * n:(b + 1) * n] for b in range(len(batch))])
            out.append(full)
        return out

    def targets(self, indices: list[int], scope: str = "in_batch") -> np.ndarray:
        return ensemble_targets(self.raw_scores(indices, scope), [m.weight for m in self.members], self.scale)
