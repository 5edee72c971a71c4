"""The concept index: FAISS over L2-normalised float32 vectors with int64 ids (ARCHITECTURE.md).

Inner product on unit vectors is cosine similarity. Two kinds: "flat" (exact,
`IndexIDMap2(IndexFlatIP)`) and "ivf" (`IndexIVFFlat` with a hashtable direct map, so that
`remove` and `reconstruct` work; trained on the first vectors added). The registry's concept
rows are the truth; this index is a cache rebuilt from them, snapshotted with `to_bytes`.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

IVF_FROM = 100_000  # `build(kind="auto")` switches to IVF at this many vectors
PAD_SIM = -1.0  # similarity reported for padded results (id -1): the lowest cosine, finite


def _ids(ids) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"ids must be >= 0 (-1 marks a missing result), got {int(arr.min())}")
    return arr


def _unit_rows(vectors, dim: int, what: str) -> np.ndarray:
    """Rows as contiguous float32 of unit norm; zero rows stay zero (no NaN)."""
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {np.shape(vectors)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float32, order="C")  # a copy: never normalise the caller's array
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.divide(arr, norms, out=arr, where=norms > 0)
    return arr


def default_nlist(n: int) -> int:
    """About 4*sqrt(n) lists, but at least 39 training points per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


class ConceptIndex:
    """L2-normalised float32 vectors with int64 ids; inner product = cosine."""

    def __init__(self, dim: int, kind: str = "flat", nlist: int = 0, nprobe: int = 16):
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if kind not in ("flat", "ivf"):
            raise ValueError(f"kind must be 'flat' or 'ivf', got {kind!r}")
        if nlist < 0 or nprobe <= 0:
            raise ValueError(f"need nlist >= 0 and nprobe >= 1, got {nlist}, {nprobe}")
        self.dim, self.kind, self.nprobe = dim, kind, nprobe
        self.index: Any = None  # faiss's stubs lack most of the IVF and IDMap API
        # Sorted copy of the stored ids: FAISS does not reject duplicates, so we check here.
        self._stored = np.empty(0, dtype=np.int64)
        if kind == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif nlist:
            self.index = self._new_ivf(nlist)

    def _new_ivf(self, nlist: int) -> Any:
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(self.nprobe, nlist)
        # k-means on at most 64 points per list (FAISS: 256): 4x less training at 1e6 concepts;
        # at 1e5, bench/routing_bench.py gave the same recall within noise either way.
        index.cp.max_points_per_centroid = 64
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        return index

    @property
    def nlist(self) -> int:
        return self.index.nlist if self.kind == "ivf" and self.index is not None else 0

    @property
    def is_trained(self) -> bool:
        return self.index is not None and self.index.is_trained

    @classmethod
    def build(
        cls, ids, vectors, kind: str = "auto", ivf_from: int = IVF_FROM, **kw
    ) -> ConceptIndex:
        """An index holding `vectors` under `ids`; "auto" is IVF from `ivf_from` vectors on."""
        arr = np.asarray(vectors)
        if arr.ndim != 2:
            raise ValueError(f"vectors must have shape (n, dim), got {arr.shape}")
        if kind == "auto":
            kind = "ivf" if arr.shape[0] >= ivf_from else "flat"
        index = cls(arr.shape[1], kind=kind, **kw)
        index.add(ids, arr)
        return index

    def train(self, vectors) -> None:
        """Train the IVF coarse quantiser (flat needs none); nlist 0 is chosen from len(vectors)."""
        if self.kind == "flat":
            return
        if self.is_trained:
            raise ValueError("this IVF index is already trained")
        x = _unit_rows(vectors, self.dim, "training vectors")
        if self.index is None:
            self.index = self._new_ivf(default_nlist(len(x)))
        if len(x) < self.index.nlist:
            raise ValueError(
                f"an IVF index with nlist={self.index.nlist} needs at least {self.index.nlist} "
                f"training vectors, got {len(x)}"
            )
        self.index.train(x)

    def add(self, ids, vectors) -> None:
        """Add normalised copies of `vectors` under `ids`, which must all be new."""
        ids = _ids(ids)
        x = _unit_rows(vectors, self.dim, "vectors")
        if len(ids) != len(x):
            raise ValueError(f"got {len(ids)} ids for {len(x)} vectors")
        if not len(ids):
            return
        new = np.unique(ids)
        if len(new) != len(ids):
            raise ValueError(f"duplicate ids in one add: {_sample(_repeated(ids))}")
        taken = new[np.isin(new, self._stored, assume_unique=True)]
        if len(taken):
            raise ValueError(f"ids already in the index: {_sample(taken)}")
        if not self.is_trained:
            self.train(x)  # IVF learns its lists from the first vectors it is given
        self.index.add_with_ids(x, ids)
        self._stored = np.union1d(self._stored, new)

    def remove(self, ids) -> int:
        """Remove `ids` (unknown ones are ignored); returns how many were removed."""
        ids = np.unique(_ids(ids))
        ids = ids[np.isin(ids, self._stored, assume_unique=True)]
        if not len(ids):
            return 0
        # IVF's hashtable direct map only accepts an IDSelectorArray (a lookup per id); the flat
        # IDMap scans every stored id, where a batch selector (a hash set) keeps that linear.
        selector = faiss.IDSelectorArray if self.kind == "ivf" else faiss.IDSelectorBatch
        removed = self.index.remove_ids(selector(len(ids), faiss.swig_ptr(ids)))
        self._stored = np.setdiff1d(self._stored, ids, assume_unique=True)
        return int(removed)

    def reconstruct(self, id_: int) -> np.ndarray:
        """The stored (normalised) vector of one id; KeyError when it is not stored."""
        if self.index is None or not np.isin(id_, self._stored):
            raise KeyError(id_)
        return np.asarray(self.index.reconstruct(int(id_)))

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosine similarities and ids per query row, best first; (sims, ids), each [n, k].

        Missing results (fewer than k stored, or not in the probed IVF lists) have id -1 and
        similarity -1.0. A single query runs on one thread: OpenMP start-up costs more than
        the search itself, and the gate runs beside the model.
        """
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = _unit_rows(queries, self.dim, "queries")
        if len(self) == 0:
            return (
                np.full((len(q), k), PAD_SIM, dtype=np.float32),
                np.full((len(q), k), -1, dtype=np.int64),
            )
        if len(q) == 1:
            previous = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                sims, ids = self.index.search(q, k)
            finally:
                faiss.omp_set_num_threads(previous)
        else:
            sims, ids = self.index.search(q, k)
        sims[ids < 0] = PAD_SIM  # FAISS pads with -FLT_MAX, which overflows in products
        return sims, ids

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def __contains__(self, id_) -> bool:
        return bool(np.isin(id_, self._stored))

    def ids(self) -> np.ndarray:
        """The stored ids, sorted."""
        return self._stored.copy()

    def to_bytes(self) -> bytes:
        """FAISS's own serialisation (never pickle); restores with `from_bytes`."""
        if self.index is None:
            raise ValueError(
                "an IVF index with nlist=0 has no lists until it is trained or added to"
            )
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConceptIndex:
        index: Any = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if isinstance(index, faiss.IndexIDMap2) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
            out = cls(index.d, kind="flat")
            out.index = index
            stored = faiss.vector_to_array(index.id_map)
        elif (
            isinstance(index, faiss.IndexIVFFlat)
            and index.metric_type == faiss.METRIC_INNER_PRODUCT
        ):
            if index.direct_map.type != faiss.DirectMap.Hashtable:  # type: ignore[attr-defined]
                raise ValueError("IVF snapshot without a hashtable direct map: remove would fail")
            out = cls(index.d, kind="ivf", nprobe=index.nprobe)
            out.index = index
            lists: Any = index.invlists
            stored = np.concatenate(
                [np.empty(0, dtype=np.int64)]
                + [
                    faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                    for i in range(index.nlist)
                    if lists.list_size(i)
                ]
            )
        else:
            raise ValueError(f"not a concept index snapshot: {type(index).__name__}")
        out._stored = np.unique(stored.astype(np.int64))
        return out


def _repeated(ids: np.ndarray) -> np.ndarray:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1]


def _sample(ids: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:n])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > n else "")
