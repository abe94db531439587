"""What users extend is one function and its registration: fusion methods (``search/fusion.py``) and
pseudo-query generators (``train/pseudo_queries.py``). A method registered here is usable end to end (the
hybrid retriever, the option checks, the CLI help, a run config), and the config's hand-kept option lists
agree with the modules that implement them."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.data import Document
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits
from idfsplade.search import fusion
from idfsplade.search.fusion import FUSIONS, register_fusion
from idfsplade.search.hybrid import HybridRetriever, check_hybrid_options, fuse, resolve_settings
from idfsplade.train import config as train_config
from idfsplade.train.pseudo_queries import PSEUDO_QUERY_GENERATORS, pseudo_queries, register_pseudo_query, remove_text

LEXICAL = {"a": 10.0, "b": 6.0, "c": 2.0}
SPARSE = {"b": 0.9, "d": 0.4}


class Stub:
    """A retriever returning fixed scores, best first."""

    def __init__(self, name: str, scores: dict[str, float]) -> None:
        self.name, self.scores = name, scores

    def search(self, text: str, k: int = 10) -> SearchHits:
        top = list(self.scores.items())[:k]
        return SearchHits([d for d, _ in top], np.array([s for _, s in top], dtype=np.float32))

    def search_many(self, queries, k=100, progress=None):
        return {q: dict(list(self.scores.items())[:k]) for q in queries}


def test_a_registered_fusion_method_runs_end_to_end(max_fusion):
    weight, method = check_hybrid_options(True, 0.75, "max")  # what search/serve/evaluate resolve options with
    assert (weight, method) == (0.75, "max")
    hybrid = HybridRetriever(Stub("bm25", LEXICAL), Stub("splade", SPARSE), weight=weight, method=method)
    hits, lexical, sparse = hybrid.search_parts("anything", k=3)
    # weights [lexical 0.25, sparse 0.75]: a 2.5, b max(1.5, 0.675) = 1.5, c 0.5, d 0.3
    assert hits.ids == ["a", "b", "c"]
    np.testing.assert_allclose(hits.scores, [2.5, 1.5, 0.5], rtol=1e-6)
    assert lexical == LEXICAL and sparse == pytest.approx(SPARSE)
    run = hybrid.search_many({"q1": "x"}, k=4)
    assert run["q1"] == pytest.approx({"a": 2.5, "b": 1.5, "c": 0.5, "d": 0.3})
    # no weight given: the method's default_weight (None: every list weighs 1)
    assert resolve_settings(None, "max") == (None, "max")
    assert fuse([LEXICAL, SPARSE], method="max", k=2) == pytest.approx({"a": 10.0, "b": 6.0})
    assert "'max' (the larger weighted score)" in fusion.method_help()
    assert "unweighted for max" in fusion.weight_help()


def test_an_unregistered_method_is_a_one_line_input_error():
    with pytest.raises(InputError, match=r"fusion method must be one of \['min_max', 'rrf'\], got 'max'"):
        check_hybrid_options(True, None, "max")
    with pytest.raises(KeyError, match="already registered"):
        register_fusion("rrf")(lambda lists, weights, rank_constant: {})


def test_builtin_fusions_and_help_come_from_the_registry():
    assert list(FUSIONS) == ["min_max", "rrf"]
    assert FUSIONS["min_max"].default_weight == 0.5 and FUSIONS["rrf"].default_weight is None
    assert fusion.method_help() == ("'min_max' (normalization-processor, arithmetic mean) or 'rrf' (k=60). "
                                    "Default: min_max.")


@pytest.fixture
def last_sentence():
    @register_pseudo_query("last_sentence")
    def last_sentence(doc, rng, idf):
        sentences = [s for s in doc.text.split(". ") if len(s.split()) >= 3]
        return (sentences[-1], remove_text(doc.text, sentences[-1])) if len(sentences) > 1 else None

    yield "last_sentence"
    del PSEUDO_QUERY_GENERATORS["last_sentence"]


DOC = Document("1", "", "the wing was tested in a tunnel. the flow over the wing stayed attached. "
                        "the lift rose with the angle until the stall")


def test_a_registered_pseudo_query_generator_is_a_valid_config_choice(last_sentence, tmp_path):
    (name, query, passage), = pseudo_queries(DOC, ["last_sentence"], np.random.default_rng(0))
    assert name == "last_sentence" and query == "the lift rose with the angle until the stall"
    assert passage == "the wing was tested in a tunnel. the flow over the wing stayed attached."
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  kind: weak\n  pseudo_queries: [title, last_sentence]\n")
    assert train_config.load_config(path).data.pseudo_queries == ["title", "last_sentence"]


def test_an_unknown_pseudo_query_generator_is_rejected_with_the_registered_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  kind: weak\n  pseudo_queries: [title, last_sentence]\n")
    with pytest.raises(InputError, match=r"must be one of \['title', 'first_sentence', 'sentence', 'span', "
                                         r"'terms'\], got 'last_sentence'"):
        train_config.load_config(path)


def test_config_choices_agree_with_the_modules_that_implement_them():
    from idfsplade.train.losses import OBJECTIVES, SCOPES
    from idfsplade.train.query_head import HEADS
    from idfsplade.train.student import QUERY_WEIGHTINGS

    choices = train_config.CHOICES
    assert tuple(choices["loss.objective"]) == OBJECTIVES
    assert tuple(choices["loss.scope"]) == SCOPES
    assert tuple(choices["loss.head"]) == HEADS
    assert tuple(choices["student.query_weighting"]) == QUERY_WEIGHTINGS
    assert choices["data.pseudo_queries"] is PSEUDO_QUERY_GENERATORS
