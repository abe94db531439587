"""Milvus: exact sparse dot-product search in a vector database, embedded or on a server/cluster.

One collection holds a ``VARCHAR`` primary key (the document id) and a ``SPARSE_FLOAT_VECTOR`` field
indexed by ``SPARSE_INVERTED_INDEX`` with metric ``IP``. With ``drop_ratio_search=0`` (the default)
nothing is pruned and the top-k is exact (float32 sums, so scores agree with the embedded index to
~1e-6 relative). The same code runs embedded (milvus-lite, a local ``.db`` file) or against a
Milvus server or cluster by URI: see ``docs/backends.md`` for the scale-out setup.

Embedded builds are atomic: the ``.db`` file is written inside a temporary folder that is swapped
into place (milvus-lite has neither collection aliases nor renames, checked on milvus-lite 2.5.1).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from idfsplade.atomic import atomic_dir
from idfsplade.errors import InputError
from idfsplade.index.base import SearchHits

ID_FIELD = "doc_id"
VECTOR_FIELD = "vector"
DB_FILE = "milvus.db"
MAX_TOP_K = 16384  # Milvus' limit on ``limit`` and on queries per search request
_MAX_VARCHAR = 65535
# milvus-lite starts a server process per database. pymilvus waits 10 s for its socket by default; wait up
# to a minute on busy cores. And that server's start fails now and then ("Open storage failed, err: unable
# to open database file" in /tmp/milvus*.ERROR, twice in a day of full test runs; a new start one second
# later works), so an embedded client is created up to EMBEDDED_START_ATTEMPTS times.
EMBEDDED_START_S = 60.0
EMBEDDED_START_ATTEMPTS = 3


def _embedded_client(pymilvus, db: str):
    """A MilvusClient on a milvus-lite database file, retried when its server fails to start."""
    import time

    for attempt in range(1, EMBEDDED_START_ATTEMPTS + 1):
        try:
            return pymilvus.MilvusClient(db, timeout=EMBEDDED_START_S)
        except pymilvus.MilvusException:
            if attempt == EMBEDDED_START_ATTEMPTS:
                raise
            time.sleep(1.0)


def require() -> None:
    """Raise :class:`InputError` unless pymilvus and milvus-lite import."""
    try:
        _import_pymilvus()
    except ImportError as exc:
        raise InputError(f"the milvus backend needs pymilvus and milvus-lite: pip install 'idfsplade[milvus]' ({exc})"
                         ) from None


def _import_pymilvus():
    """pymilvus, with milvus-lite imported too: a local ``.db`` URI needs it."""
    with warnings.catch_warnings():
        # milvus-lite 2.5 imports pkg_resources (hence the setuptools<81 pin), which warns on import.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import milvus_lite  # noqa: F401
        import pymilvus
    return pymilvus


class MilvusBackend:
    """A Milvus collection of sparse document vectors behind the ``SparseIndex`` interface."""

    def __init__(self, client, collection: str, n_docs: int, drop_ratio_search: float = 0.0,
                 workdir: tempfile.TemporaryDirectory | None = None) -> None:
        self.client = client
        self.collection = collection
        self.n_docs = n_docs
        self.drop_ratio_search = drop_ratio_search  # > 0 drops the smallest query weights: faster, approximate
        self._workdir = workdir  # the temporary folder of an index built without a path, removed on close

    def __len__(self) -> int:
        return self.n_docs

    @classmethod
    def build(cls, docs: sp.csr_matrix, doc_ids: list[str], path: Path | None = None, *,
              uri: str | None = None, token: str = "", collection: str = "idfsplade",
              inverted_index_algo: str = "DAAT_MAXSCORE", drop_ratio_search: float = 0.0,
              batch_size: int = 1000, overwrite: bool = False, db_name: str = "") -> MilvusBackend:
        """Index ``docs`` into a new collection and return it loaded for search.

        Embedded (no ``uri``): the collection lives in ``path/milvus.db`` (a temporary folder when
        ``path`` is ``None``), built atomically. Server (``uri="http://host:19530"``, ``token``
        ``"user:password"`` or an API key): the collection is created there; an existing one is
        replaced only with ``overwrite=True``. ``inverted_index_algo`` is Milvus' query algorithm
        (``DAAT_MAXSCORE``, ``DAAT_WAND`` or ``TAAT_NAIVE``; all exact). ``db_name``: a server's
        database (``""``: its default).
        """
        pymilvus = _import_pymilvus()
        if uri is not None and path is not None:
            raise InputError("give the milvus backend either a path (embedded) or a uri (server), not both",
                             field="uri")
        if batch_size < 1:
            raise InputError("batch_size must be at least 1", field="batch_size")
        if uri is not None:
            client = pymilvus.MilvusClient(uri=uri, token=token, db_name=db_name)
            if client.has_collection(collection):
                if not overwrite:
                    client.close()
                    raise InputError(f"collection {collection!r} already exists at {uri} (overwrite=True replaces it)",
                                     field="collection")
                client.drop_collection(collection)
            _fill(client, collection, docs, doc_ids, inverted_index_algo, batch_size)
            return cls(client, collection, len(doc_ids), drop_ratio_search)
        workdir = None
        if path is None:
            workdir = tempfile.TemporaryDirectory(prefix="idfsplade-milvus-")
            path = Path(workdir.name) / "index"
        with atomic_dir(path) as tmp:
            client = _embedded_client(pymilvus, str(tmp / DB_FILE))
            try:
                _fill(client, collection, docs, doc_ids, inverted_index_algo, batch_size)
            finally:
                client.close()
        backend = cls.open(str(Path(path) / DB_FILE), collection, drop_ratio_search=drop_ratio_search)
        backend._workdir = workdir
        return backend

    @classmethod
    def open(cls, uri: str, collection: str = "idfsplade", token: str = "",
             drop_ratio_search: float = 0.0, db_name: str = "") -> MilvusBackend:
        """Connect to an existing collection: a local ``.db`` file or a server URI (and ``db_name``)."""
        pymilvus = _import_pymilvus()
        if uri.endswith(".db") and not Path(uri).exists():
            raise InputError("no milvus-lite database here", path=uri)
        client = (_embedded_client(pymilvus, uri) if uri.endswith(".db")
                  else pymilvus.MilvusClient(uri=uri, token=token, db_name=db_name))
        if not client.has_collection(collection):
            client.close()
            raise InputError(f"no collection {collection!r}", path=uri, field="collection")
        client.load_collection(collection)
        count = client.query(collection, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
        return cls(client, collection, int(count), drop_ratio_search)

    def close(self) -> None:
        """Disconnect (and stop the embedded milvus-lite server); remove a temporary index."""
        self.client.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def search(self, term_ids: np.ndarray, weights: np.ndarray, k: int = 10) -> SearchHits:
        return self.search_batch([(term_ids, weights)], k)[0]

    def search_batch(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> list[SearchHits]:
        if k > MAX_TOP_K:
            raise InputError(f"milvus returns at most {MAX_TOP_K} hits per query, asked for {k}", field="k")
        results = [SearchHits([], np.zeros(0, dtype=np.float32)) for _ in queries]
        if k <= 0:
            return results
        vectors = [_query_vector(ids, w) for ids, w in queries]
        todo = [i for i, v in enumerate(vectors) if v]  # Milvus rejects empty query vectors
        params = {"metric_type": "IP", "params": {"drop_ratio_search": self.drop_ratio_search}}
        for start in range(0, len(todo), MAX_TOP_K):
            chunk = todo[start:start + MAX_TOP_K]
            found = self.client.search(self.collection, data=[vectors[i] for i in chunk], anns_field=VECTOR_FIELD,
                                       limit=k, search_params=params, output_fields=[],
                                       consistency_level="Strong")
            for i, rows in zip(chunk, found):
                rows = [r for r in rows if r["distance"] > 0]
                results[i] = SearchHits([r["id"] for r in rows],
                                        np.asarray([r["distance"] for r in rows], dtype=np.float32))
        return results


def _query_vector(term_ids: np.ndarray, weights: np.ndarray) -> dict[int, float]:
    """Milvus' sparse vector form ``{dimension: weight}``; negative ids and zero weights dropped."""
    term_ids = np.asarray(term_ids, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float32)
    keep = (term_ids >= 0) & (weights != 0)
    return dict(zip(term_ids[keep].tolist(), weights[keep].tolist()))


def _fill(client, collection: str, docs: sp.csr_matrix, doc_ids: list[str], inverted_index_algo: str,
          batch_size: int) -> None:
    """Create the collection with its sparse inverted index, insert every row, flush (seal) it."""
    from pymilvus import DataType

    longest = max((len(d.encode("utf-8")) for d in doc_ids), default=1)
    if longest > _MAX_VARCHAR:
        raise InputError(f"milvus keys are at most {_MAX_VARCHAR} bytes; a document id has {longest}")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=max(longest, 1))
    schema.add_field(VECTOR_FIELD, DataType.SPARSE_FLOAT_VECTOR)
    index_params = client.prepare_index_params()
    index_params.add_index(field_name=VECTOR_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                           params={"inverted_index_algo": inverted_index_algo})
    client.create_collection(collection, schema=schema, index_params=index_params, consistency_level="Strong")
    for start in range(0, docs.shape[0], batch_size):
        rows = []
        for row in range(start, min(start + batch_size, docs.shape[0])):
            lo, hi = docs.indptr[row], docs.indptr[row + 1]
            rows.append({ID_FIELD: doc_ids[row],
                         VECTOR_FIELD: dict(zip(docs.indices[lo:hi].tolist(), docs.data[lo:hi].tolist()))})
        client.insert(collection, rows)
    client.flush(collection)
