"""Build the default document model `idfsplade-tiny` (the command that reproduces the shipped one).

    .venv/bin/python configs/idfsplade-tiny/build.py [--shared ../shared/data] [--docs-per-corpus 1000]

Two stages from the packaged SPLADE-tiny, on 2 CPU cores:

1. **Label-free pre-training** (`stage1.yaml`): pseudo-queries (title, sentence, span, high-IDF terms,
   each cut out of its positive) from a mixed corpus of up to ``--docs-per-corpus`` documents of every
   collection the project ships (`datasets/`) or can read (`../shared/data/`), **corpora only** — no
   query or qrels file is opened; BM25 negatives; teachers all-MiniLM-L6-v2 + stemmed BM25; the mixed
   corpus's IDF.
2. **Supervised fine-tuning** (`stage2.yaml`): SciFact's *train* split (809 queries, BM25 negatives),
   the SciFact config's teachers and loss, starting from stage 1.

Then the stage-2 model is written in fp16 safetensors to `idfsplade/models/idfsplade-tiny/` with its
`idf.json` (the mixed corpus's), the two configs, a model card and `SHA256SUMS`. Nothing here reads a
test split; evaluate it with `benchmarks/relevance.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TARGET = REPO / "idfsplade" / "models" / "idfsplade-tiny"


def mixed_corpus(sources: list[Path], out: Path, per_corpus: int, seed: int = 42) -> list[dict]:
    """``out/corpus.jsonl``: up to ``per_corpus`` documents (seeded sample) of each source's corpus,
    ids prefixed with the collection name. Returns what was taken from where."""
    import numpy as np

    from idfsplade.atomic import atomic_write_text
    from idfsplade.data import iter_corpus

    lines, taken = [], []
    for source in sources:
        docs = list(iter_corpus(source / "corpus.jsonl"))
        rng = np.random.default_rng(seed)
        pick = sorted(rng.permutation(len(docs))[:per_corpus].tolist())
        for i in pick:
            d = docs[i]
            lines.append(json.dumps({"_id": f"{source.name}:{d.id}", "title": d.title, "text": d.text}))
        taken.append({"collection": source.name, "documents": len(pick), "of": len(docs)})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "corpus.jsonl", "\n".join(lines) + "\n")
    return taken


def collections(shared: Path) -> list[Path]:
    """Every BEIR folder in datasets/ and ``shared`` with a test split, one per name (shared/ first): the
    six collections the shipped model was built from (the training-only sets added later, pubmedqa and
    wikiqa, have no test split and are left out, so the build still reproduces it)."""
    found: dict[str, Path] = {}
    for root in (shared, REPO / "datasets"):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if (folder / "corpus.jsonl").exists() and (folder / "qrels" / "test.tsv").exists():
                    found.setdefault(folder.name, folder)
    return [found[name] for name in sorted(found)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--docs-per-corpus", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "idfsplade-tiny")
    parser.add_argument("--card-only", action="store_true",
                        help="only copy MODEL_CARD.md into the shipped folder and rewrite SHA256SUMS")
    args = parser.parse_args()
    if args.card_only:
        shutil.copy(HERE / "MODEL_CARD.md", TARGET / "MODEL_CARD.md")
        write_checksums(TARGET)
        print(f"updated {TARGET.relative_to(REPO)}/MODEL_CARD.md and SHA256SUMS")
        return

    from idfsplade.train import load_config
    from idfsplade.train.trainer import train

    sources = collections(args.shared)
    corpus_dir = args.work / "mixed-corpus"
    taken = mixed_corpus(sources, corpus_dir, args.docs_per_corpus)
    stage1 = load_config(HERE / "stage1.yaml", {"data.dataset": str(corpus_dir),
                                                "output_dir": str(args.work / "stage1")})
    first = train(stage1)
    stage2 = load_config(HERE / "stage2.yaml", {"student.model": str(first), "output_dir": str(args.work / "stage2")})
    second = train(stage2)
    write_release(second, first / "idf.json", taken)


def write_release(model_dir: Path, idf_json: Path, taken: list[dict]) -> None:
    """fp16 copy of the trained SparseEncoder + the mixed-corpus idf.json, configs, card, checksums."""
    import torch
    from safetensors.torch import load_file, save_file

    from idfsplade.atomic import atomic_dir

    from idfsplade.model import load_sparse_encoder

    with atomic_dir(TARGET) as tmp:
        # query route = the mixed corpus's IDF (the model's own, for --idf model); documents as trained
        load_sparse_encoder(str(model_dir), idf=idf_json, device="cpu").save(str(tmp))
        for weights in tmp.rglob("model.safetensors"):
            tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(weights).items()}
            save_file(tensors, weights, metadata={"format": "pt"})
        shutil.copy(idf_json, tmp / "idf.json")
        (tmp / "README.md").unlink(missing_ok=True)
        for name in ("stage1.yaml", "stage2.yaml"):
            shutil.copy(HERE / name, tmp / name)
        (tmp / "training_data.json").write_text(json.dumps(taken, indent=2) + "\n", encoding="utf-8")
        (tmp / "MODEL_CARD.md").write_text((HERE / "MODEL_CARD.md").read_text(encoding="utf-8"), encoding="utf-8")
        write_checksums(tmp)
    print(f"wrote {TARGET.relative_to(REPO)}")


def write_checksums(folder: Path) -> None:
    """``SHA256SUMS`` over every file of ``folder`` (``sha256sum -c SHA256SUMS`` checks it)."""
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}"
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
