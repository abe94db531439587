"""Query-time pruning in :class:`QueryEncoder`: drop tokens whose IDF is below ratio × the query's max."""

from __future__ import annotations

import numpy as np
import pytest

from idfsplade.errors import InputError
from idfsplade.model import QueryEncoder, model_query_encoder

TEXT = "the effect of vitamin d on bone density"


@pytest.fixture(scope="module")
def weights(tokenizer) -> np.ndarray:
    """A fixed weight per token id (seeded), zero for special tokens like an IDF table."""
    w = np.random.default_rng(0).uniform(0.5, 8.0, len(tokenizer)).astype(np.float32)
    w[tokenizer.all_special_ids] = 0
    return w


def _expected(tokenizer, weights, ratio: float) -> dict[int, float]:
    ids = sorted(set(tokenizer(TEXT, add_special_tokens=False)["input_ids"]))
    top = max(weights[i] for i in ids)
    return {i: float(weights[i]) for i in ids if weights[i] >= ratio * top}


@pytest.mark.parametrize("ratio", [0.3, 0.6, 0.9, 1.0])
def test_pruning_keeps_tokens_at_or_above_ratio_of_max(tokenizer, weights, ratio):
    query = QueryEncoder(tokenizer, weights, prune_ratio=ratio).encode(TEXT)
    expected = _expected(tokenizer, weights, ratio)
    assert dict(zip(query.ids.tolist(), query.weights.tolist())) == pytest.approx(expected)
    assert query.weights.min() >= ratio * query.weights.max()


def test_pruning_is_off_by_default_and_at_zero(tokenizer, weights):
    full = _expected(tokenizer, weights, 0.0)
    for encoder in (QueryEncoder(tokenizer, weights), QueryEncoder(tokenizer, weights, prune_ratio=0.0)):
        query = encoder.encode(TEXT)
        assert query.ids.tolist() == sorted(full)
    pruned = QueryEncoder(tokenizer, weights, prune_ratio=0.9).encode(TEXT)
    assert 1 <= len(pruned.ids) < len(full)


def test_ratio_one_keeps_only_the_highest_weight_token(tokenizer, weights):
    query = QueryEncoder(tokenizer, weights, prune_ratio=1.0).encode(TEXT)
    full = _expected(tokenizer, weights, 0.0)
    assert query.ids.tolist() == [max(full, key=full.get)]


def test_empty_text_stays_empty(tokenizer, weights):
    query = QueryEncoder(tokenizer, weights, prune_ratio=0.5).encode("")
    assert len(query.ids) == 0 and len(query.weights) == 0


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_out_of_range_ratio_is_an_input_error(tokenizer, weights, ratio):
    with pytest.raises(InputError, match="field 'prune_ratio'"):
        QueryEncoder(tokenizer, weights, prune_ratio=ratio)


def test_from_model_passes_the_ratio(tiny_encoder):
    full = model_query_encoder(tiny_encoder).encode(TEXT)
    pruned = model_query_encoder(tiny_encoder, prune_ratio=0.8).encode(TEXT)
    keep = full.weights >= 0.8 * full.weights.max()
    assert pruned.ids.tolist() == full.ids[keep].tolist()
    np.testing.assert_array_equal(pruned.weights, full.weights[keep])
