"""The IDF of a corpus, computed once and reused while the corpus bytes and the tokenizer are the same
(a ``<name>.key.json`` beside the ``idf.json``): what evaluation (:mod:`idfsplade.pipeline`) and
training (:mod:`idfsplade.train.trainer`) both read, so neither has to import the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from idfsplade.atomic import atomic_write_json
from idfsplade.data import BeirDataset, document_text
from idfsplade.fingerprint import file_fingerprint, read_key, stale_notice
from idfsplade.idf.idf import IdfTable

Progress = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


def no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the fast tokenizer's definition (vocabulary, normaliser, pre-tokeniser, model), without
    its truncation and padding settings, which callers change at run time and which count nothing."""
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def corpus_idf(dataset: BeirDataset, tokenizer, out: Path, progress: Progress = no_progress) -> IdfTable:
    """Compute (or reuse) ``out`` = the IDF of the dataset's corpus for ``tokenizer``.

    Reused only when ``<out stem>.key.json`` records the same corpus bytes and tokenizer. Document
    frequency is counted over each document's *whole* text, not the encoder's first 512 tokens: IDF
    is a corpus statistic of the words queries use, as OpenSearch computes it, independent of how
    far a model reads.
    """
    key = {"corpus": file_fingerprint(dataset.corpus_path)["sha256"], "tokenizer": tokenizer_fingerprint(tokenizer),
           "truncation": None}
    key_path = out.with_name(out.stem + ".key.json")
    saved = read_key(key_path)
    if out.exists() and saved == key:
        return IdfTable.load(out, tokenizer)
    stale_notice("the IDF", out, saved if out.exists() else None, key)
    n_docs = sum(1 for _ in dataset.iter_corpus())
    advance = progress("idf", n_docs)
    table = IdfTable.from_corpus((document_text(d) for d in dataset.iter_corpus()), tokenizer, progress=advance)
    table.save(out)
    atomic_write_json(key_path, key)  # after the table: a kill in between leaves no key, so it recomputes
    return table
