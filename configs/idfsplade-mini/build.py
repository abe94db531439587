"""Build `idfsplade-mini`: idfsplade-tiny + α · all-MiniLM-L6-v2 read through a vocabulary head tied to its own
word embeddings, summed into one sparse vector; the head's per-token bias distilled on 2 CPU cores.

    .venv/bin/python configs/idfsplade-mini/build.py [--shared ../shared/data] [--work runs/idfsplade-mini]
        [--alpha 0.5] [--bias-start -2] [--top-k 256] [--epochs 3] [--lr 0.05]

What is trained, and why only that (measured, docs/training.md#idfsplade-mini): all-MiniLM-L6-v2 costs ~27x
SPLADE-tiny per token, so on 2 cores its layers stay frozen and only the tied head's bias ``b`` (30,522
numbers) is learned. Because ``max_i (h_i · E_j + b_j) = max_i h_i · E_j + b_j``, one pass of the frozen
encoder over the training corpora caches ``m[d, j] = max_i h_i · E_j`` (fp16, full vocabulary) and every
step after that is exact and takes milliseconds:

1. **Cache** (resumable, one folder per collection): idfsplade-tiny's vectors, ``m`` and the mean-pooled
   all-MiniLM-L6-v2 embedding (the dense teacher) of every document of the training collections.
2. **Distil** ``b`` with the project's recipe on real questions, **training splits only**: SciFact train
   (809), PubMedQA (1,000), WikiQA (1,242), three quarters of each (a fixed hash of the query id), the
   remaining quarter held out to pick the epoch. Candidates: the positive + 15 stemmed-BM25 negatives;
   targets: stemmed BM25 and all-MiniLM-L6-v2 cosine, per-query min-max, mean, × 30; loss: KL between
   the softmaxes; the student is the summed vector exactly as encoded, IDF-weighted query terms, the
   top-k of the tied part recomputed with the current bias every step.
3. **Write** ``idfsplade/models/idfsplade-mini/``: the ``SparseSum`` config naming both encoders by alias
   (their weights are read from their packages, not copied), the bias (fp16 safetensors), idf.json
   (idfsplade-tiny's), the model card and ``SHA256SUMS``. No test split is read; evaluate with
   ``benchmarks/relevance.py --mini``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TARGET = REPO / "idfsplade" / "models" / "idfsplade-mini"
TRAIN_SETS = ("scifact", "pubmedqa", "wikiqa")
VOCAB = 30522


def parts(alpha: float, bias_start: float, top_k: int) -> list[dict]:
    return [{"kind": "mlm", "source": "idfsplade-tiny", "weight": 1.0, "max_seq_length": 512},
            {"kind": "tied", "source": "all-MiniLM-L6-v2", "weight": alpha, "max_seq_length": 256, "top_k": top_k,
             "bias_start": bias_start}]


def held_out(qid: str) -> bool:
    """A fixed quarter of each training split, by a hash of the query id: the selection set."""
    return int(hashlib.sha1(qid.encode()).hexdigest(), 16) % 4 == 0


def cache_collection(folder: Path, out: Path, batch_size: int = 32) -> None:
    """``out/tiny/vectors`` (idfsplade-tiny, corpus IDF in ``out/tiny/idf.json``), ``out/m.npy`` (fp16
    documents × vocabulary: ``max_i h_i · E_j`` of all-MiniLM-L6-v2, pads excluded), ``out/dense.npy`` and
    ``out/ids.json``. Skips what is there; ``m`` is written to a temporary file renamed at the end."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from idfsplade.data import BeirDataset, document_text
    from idfsplade.model.composite import native_bf16
    from idfsplade.model.registry import resolve_model
    from idfsplade.pipeline import SparseModelSpec, encode_corpus, load_model

    dataset = BeirDataset(folder)
    out.mkdir(parents=True, exist_ok=True)
    spec = SparseModelSpec(model="idfsplade-tiny", name="tiny")
    model, idf_file = load_model(spec, dataset, out / "tiny")
    encode_corpus(model, dataset, out / "tiny" / "vectors", spec, idf_file)
    if (out / "m.npy").exists():
        return
    path = resolve_model("all-MiniLM-L6-v2")
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    bf16 = native_bf16("cpu")
    dtype = torch.bfloat16 if bf16 else torch.float32
    embeddings = encoder.get_input_embeddings().weight.detach().to(dtype)
    docs = list(dataset.iter_corpus())
    texts = [document_text(d) for d in docs]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    order = np.argsort(lengths, kind="stable")[::-1]
    m = np.lib.format.open_memmap(out / "m.tmp.npy", mode="w+", dtype=np.float16, shape=(len(docs), VOCAB))
    dense = np.zeros((len(docs), encoder.config.hidden_size), dtype=np.float32)
    start = time.time()
    for s in range(0, len(docs), batch_size):
        idx = order[s:s + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = encoder(**batch).last_hidden_state
        with torch.inference_mode():
            mask = batch["attention_mask"].bool()
            mean = (hidden.float() * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            dense[idx] = torch.nn.functional.normalize(mean, dim=-1).numpy()
            states = hidden.to(dtype)
            for r, i in enumerate(idx):
                m[i] = (embeddings @ states[r, mask[r]].T).amax(1).float().numpy().astype(np.float16)
    m.flush()
    del m
    np.save(out / "dense.npy", dense)
    (out / "ids.json").write_text(json.dumps([d.id for d in docs]), encoding="utf-8")
    os.replace(out / "m.tmp.npy", out / "m.npy")
    print(f"{dataset.name}: cached {len(docs)} documents in {time.time() - start:.0f} s", flush=True)


class Cached:
    """One cached collection: tiny vectors, ``m``, dense embeddings, its corpus IDF query side."""

    def __init__(self, folder: Path, out: Path) -> None:
        import numpy as np

        from idfsplade.data import BeirDataset, document_text
        from idfsplade.idf import IdfTable
        from idfsplade.model.inference_free import load_tokenizer
        from idfsplade.query.encoder import QueryEncoder
        from idfsplade.vectors import load_csr

        self.dataset = BeirDataset(folder)
        self.tiny, self.ids, _ = load_csr(out / "tiny" / "vectors", mmap=False)
        if json.loads((out / "ids.json").read_text(encoding="utf-8")) != self.ids:
            raise SystemExit(f"{out}: the cached document order differs from the vectors': delete {out} and rerun")
        self.m = np.load(out / "m.npy", mmap_mode="r")
        self.dense = np.load(out / "dense.npy")
        self.tokenizer = load_tokenizer("idfsplade-tiny")
        self.idf = IdfTable.load(out / "tiny" / "idf.json", self.tokenizer).weights
        self.query_encoder = QueryEncoder(self.tokenizer, self.idf)
        self.texts = [document_text(d) for d in self.dataset.iter_corpus()]

    def query_matrix(self, queries: dict[str, str]):
        return self.query_encoder.to_csr(self.query_encoder.encode_batch(list(queries.values()))).tocsr()


def tied_vectors(m, bias, top_k: int, specials: list[int], chunk: int = 2048):
    """``log1p(relu(m + bias))``, special tokens 0, each row's ``top_k`` largest kept: the tied part as encoded."""
    import numpy as np
    import scipy.sparse as sp

    blocks = []
    for s in range(0, m.shape[0], chunk):
        x = np.asarray(m[s:s + chunk], dtype=np.float32) + bias
        np.log1p(np.maximum(x, 0, out=x), out=x)
        x[:, specials] = 0
        if top_k and top_k < x.shape[1]:
            x[x < np.partition(x, -top_k, axis=1)[:, -top_k][:, None]] = 0
        blocks.append(sp.csr_matrix(x))
    return sp.vstack(blocks, format="csr")


def ndcg10(cached: Cached, vectors, queries: dict[str, str], qrels: dict, k: int = 100) -> float:
    from idfsplade.evaluate.metrics import evaluate_run
    from idfsplade.train.experiment import top_k_run

    run = top_k_run((cached.query_matrix(queries) @ vectors.T).toarray(), list(queries), cached.ids, k)
    # what the index returns: matched documents only
    return evaluate_run(qrels, {q: {d: s for d, s in hits.items() if s > 0} for q, hits in run.items()})["nDCG@10"]


def train_bias(collections: dict[str, Cached], alpha: float, bias_start: float, top_k: int, epochs: int,
               lr: float, n_negatives: int = 15, scale: float = 30.0, batch_size: int = 32, seed: int = 0) -> dict:
    """Distil the tied head's bias (module doc, step 2); returns the best epoch's bias and the curve."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from idfsplade.model.registry import resolve_model
    from idfsplade.search.bm25 import BM25Retriever
    from idfsplade.train.ensemble import ensemble_targets
    from idfsplade.train.teachers import BM25Teacher

    torch.manual_seed(seed)
    path = resolve_model("all-MiniLM-L6-v2")
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]):
        out = []
        for s in range(0, len(texts), 128):
            batch = tokenizer(texts[s:s + 128], padding=True, truncation=True, max_length=256, return_tensors="pt")
            with torch.inference_mode():
                hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(out).numpy()

    examples, selection = [], {}
    for name, c in collections.items():
        queries, qrels = c.dataset.split_queries("train", doc_ids=set(c.ids))
        dev = {q: t for q, t in queries.items() if held_out(q)}
        selection[name] = (dev, {q: qrels[q] for q in dev})
        train = {q: t for q, t in queries.items() if not held_out(q)}
        bm25 = BM25Retriever(c.ids, c.texts, stemmer="english").search_many(train, k=n_negatives + 5)
        teacher = BM25Teacher(c.texts, stemmer="english")
        query_embeddings = embed(list(train.values()))
        row_of = {d: i for i, d in enumerate(c.ids)}
        for qi, (qid, text) in enumerate(train.items()):
            positives = [row_of[d] for d, r in qrels[qid].items() if r > 0]
            negatives = [row_of[d] for d in bm25.get(qid, {}) if row_of[d] not in positives][:n_negatives]
            rows = positives[:1] + negatives
            query = c.query_encoder.encode(text)
            if not len(query.ids) or len(rows) < 2:
                continue
            terms = np.asarray(query.ids, dtype=np.int64)
            lexical = (teacher.encode_queries([text]) @ teacher.encode_passages([c.texts[r] for r in rows]).T).toarray()
            dense = (query_embeddings[qi] @ c.dense[rows].T)[None]
            target = ensemble_targets([lexical, dense], [1.0, 1.0], scale)[0]
            examples.append((name, rows, torch.from_numpy(terms), torch.from_numpy(query.weights.astype(np.float32)),
                             torch.from_numpy(c.tiny[rows][:, terms].toarray().astype(np.float32)),
                             torch.from_numpy(target)))
        print(f"{name}: {len(train)} training queries, {len(dev)} held out", flush=True)

    specials = sorted(set(next(iter(collections.values())).tokenizer.all_special_ids))

    def select(bias) -> dict:
        scores = {name: round(ndcg10(c, c.tiny + alpha * tied_vectors(c.m, bias.numpy(), top_k, specials),
                                     *selection[name]), 4) for name, c in collections.items()}
        return {**scores, "mean": round(float(np.mean(list(scores.values()))), 4)}

    bias = torch.nn.Parameter(torch.full((VOCAB,), bias_start))
    optimizer = torch.optim.Adam([bias], lr=lr)
    curve = [{"epoch": 0, "held_out": select(bias.detach())}]
    print(curve[-1], flush=True)
    best = (curve[0]["held_out"]["mean"], 0, bias.detach().clone())
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        start, total, steps = time.time(), 0.0, 0
        order = rng.permutation(len(examples))
        for s in range(0, len(order), batch_size):
            optimizer.zero_grad()
            loss = 0.0
            batch = [examples[i] for i in order[s:s + batch_size]]
            for name, rows, terms, idf, tiny, target in batch:
                logits = torch.from_numpy(np.asarray(collections[name].m[rows], dtype=np.float32)) + bias
                with torch.no_grad():
                    kth = logits.topk(top_k, dim=1).values[:, -1:]
                at_terms = logits[:, terms]
                weights = tiny + alpha * torch.log1p(torch.relu(at_terms)) * (at_terms >= kth)
                student = (weights * idf).sum(1)
                loss = loss + torch.nn.functional.kl_div(torch.log_softmax(student, 0), torch.log_softmax(target, 0),
                                                         log_target=True, reduction="sum")
            loss = loss / len(batch)
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
        curve.append({"epoch": epoch, "loss": round(total / steps, 4), "seconds": round(time.time() - start, 1),
                      "held_out": select(bias.detach())})
        print(curve[-1], flush=True)
        if curve[-1]["held_out"]["mean"] > best[0]:
            best = (curve[-1]["held_out"]["mean"], epoch, bias.detach().clone())
    return {"bias": best[2], "best_epoch": best[1], "curve": curve, "examples": len(examples)}


def write_model(bias, alpha: float, bias_start: float, top_k: int, provenance: dict) -> None:
    import shutil

    import torch
    from safetensors.torch import save_file

    from idfsplade.model.composite import build_composite_encoder
    from idfsplade.model.registry import resolve_model

    tiny = Path(resolve_model("idfsplade-tiny"))
    staging = TARGET.with_name(TARGET.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    build_composite_encoder(parts(alpha, bias_start, top_k), tiny / "idf.json", biases={"part1.bias": bias}).save(str(staging))
    (staging / "README.md").unlink(missing_ok=True)  # the model card below replaces sentence-transformers' stub
    save_file({"part1.bias": bias.to(torch.float16).contiguous()}, str(next(staging.glob("document_0_*")) / "parts.safetensors"))
    shutil.copyfile(tiny / "idf.json", staging / "idf.json")
    (staging / "training.json").write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    seal(staging)
    shutil.rmtree(TARGET, ignore_errors=True)
    os.replace(staging, TARGET)


def seal(folder: Path) -> None:
    """Copy the model card in and (re)write ``SHA256SUMS`` over every file (what `idfsplade check` verifies)."""
    import shutil

    card = HERE / "MODEL_CARD.md"
    if card.exists():
        shutil.copyfile(card, folder / "MODEL_CARD.md")
    sums = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        sums.append(f"{hashlib.sha256(file.read_bytes()).hexdigest()}  {file.relative_to(folder).as_posix()}")
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "idfsplade-mini")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--bias-start", type=float, default=-2.0)
    parser.add_argument("--top-k", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--card-only", action="store_true", help="only copy the model card in and reseal the folder")
    args = parser.parse_args()
    if args.card_only:
        seal(TARGET)
        return

    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    started = time.time()
    collections = {}
    for name in TRAIN_SETS:
        folder = args.shared / name
        if not (folder / "corpus.jsonl").exists():
            raise SystemExit(f"{folder}: no corpus.jsonl (pass --shared)")
        cache_collection(folder, args.work / "cache" / name)
        collections[name] = Cached(folder, args.work / "cache" / name)
    cached_s = time.time() - started
    result = train_bias(collections, args.alpha, args.bias_start, args.top_k, args.epochs, args.lr)
    provenance = {"parts": parts(args.alpha, args.bias_start, args.top_k), "train_sets": list(TRAIN_SETS),
                  "examples": result["examples"], "epochs": args.epochs, "lr": args.lr,
                  "best_epoch": result["best_epoch"], "curve": result["curve"],
                  "seconds": {"cache": round(cached_s), "total": round(time.time() - started)},
                  "cpu": torch.backends.cpu.get_cpu_capability()}
    write_model(result["bias"], args.alpha, args.bias_start, args.top_k, provenance)
    print(f"wrote {TARGET.relative_to(REPO)} (best epoch {result['best_epoch']})")


if __name__ == "__main__":
    from idfsplade.errors import run_main

    run_main(main)
