"""The FAISS concept index (routing/index.py): real FAISS, small random sets."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from unlearnd.routing.index import ConceptIndex, default_nlist

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, seed: int = 0, centres: int = 50, noise: float = 0.5) -> np.ndarray:
    """Vectors around random unit centres: structure for IVF to find, as real concepts have."""
    rng = np.random.default_rng(seed)
    c = unit(rng.standard_normal((centres, DIM)))
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return x.astype(np.float32)


def test_flat_search_returns_the_exact_nearest():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, DIM)).astype(np.float32)
    ids = np.arange(500, dtype=np.int64) * 10 + 3
    index = ConceptIndex(DIM)
    index.add(ids, x)
    assert len(index) == 500
    q = rng.standard_normal((20, DIM)).astype(np.float32)
    sims, got = index.search(q, 5)
    assert sims.shape == got.shape == (20, 5)
    assert sims.dtype == np.float32 and got.dtype == np.int64
    exact = unit(q) @ unit(x).T
    order = np.argsort(-exact, axis=1)[:, :5]
    np.testing.assert_array_equal(got, ids[order])
    np.testing.assert_allclose(sims, np.take_along_axis(exact, order, axis=1), atol=1e-5)
    # A stored vector finds itself with cosine 1, whatever its norm.
    sims, got = index.search(3.5 * x[7], 1)
    assert got[0, 0] == ids[7] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_ivf_recall_against_flat_is_high():
    x = clustered(5000)
    q = clustered(200, seed=1)
    ids = np.arange(5000)
    flat = ConceptIndex.build(ids, x, kind="flat")
    ivf = ConceptIndex.build(ids, x, kind="ivf")  # default nprobe 16 of 128 lists
    assert ivf.kind == "ivf" and ivf.nlist == default_nlist(5000) and len(ivf) == 5000
    _, truth = flat.search(q, 10)
    _, got = ivf.search(q, 10)
    assert np.mean(got[:, 0] == truth[:, 0]) >= 0.95
    recall10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
    assert recall10 >= 0.9


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_remove_and_removed_ids_never_come_back(kind):
    x = clustered(2000, seed=2)
    ids = np.arange(2000) + 100
    index = ConceptIndex.build(ids, x, kind=kind, nprobe=64)
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, [10**9]])) == len(gone)  # unknown ids are ignored
    assert len(index) == 2000 - len(gone)
    assert index.remove(gone) == 0
    assert gone[0] not in index and ids[1] in index
    _, got = index.search(x, 20)  # the removed vectors themselves as queries
    assert not np.isin(got, gone).any()
    assert (got[1::3, 0] == ids[1::3]).all()  # kept vectors still find themselves
    with pytest.raises(KeyError):
        index.reconstruct(gone[0])
    np.testing.assert_allclose(index.reconstruct(ids[1]), unit(x[1:2])[0], atol=1e-6)
    # A removed id may be added again, and is found again.
    index.add(gone[:1], x[:1])
    assert index.search(x[0], 1)[1][0, 0] == gone[0]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_duplicate_ids_are_rejected(kind):
    x = clustered(1000, seed=3)
    index = ConceptIndex.build(np.arange(1000), x, kind=kind)
    with pytest.raises(ValueError, match="already in the index: 5, 999"):
        index.add([5, 999, 1000], x[:3])
    with pytest.raises(ValueError, match="duplicate ids in one add: 2000"):
        index.add([2000, 2000], x[:2])
    assert len(index) == 1000  # nothing of a rejected add was stored
    index.add([1000, 1001], x[:2])
    assert len(index) == 1002


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_bytes_round_trip_gives_identical_results(kind):
    x = clustered(3000, seed=4)
    index = ConceptIndex.build(np.arange(3000) * 7, x, kind=kind, nprobe=4)
    index.remove(np.arange(0, 300) * 7)
    data = index.to_bytes()
    assert isinstance(data, bytes)
    back = ConceptIndex.from_bytes(data)
    assert (back.kind, back.dim, len(back), back.nlist) == (kind, DIM, 2700, index.nlist)
    np.testing.assert_array_equal(back.ids(), index.ids())
    q = clustered(50, seed=5)
    for a, b in zip(index.search(q, 10), back.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    # The copy is a working index: removal and duplicate checks survive the trip.
    assert back.remove([7 * 300, 7 * 301]) == 2
    with pytest.raises(ValueError, match="already in the index"):
        back.add([7 * 302], x[:1])


def test_from_bytes_rejects_other_faiss_indexes():
    for other in (faiss.IndexFlatL2(DIM), faiss.IndexIDMap2(faiss.IndexFlatL2(DIM))):
        with pytest.raises(ValueError, match="not a concept index snapshot"):
            ConceptIndex.from_bytes(faiss.serialize_index(other).tobytes())


def test_shapes_and_values_are_checked():
    index = ConceptIndex(DIM)
    index.add([1], np.ones((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match=r"vectors must have shape \(n, 32\), got \(2, 16\)"):
        index.add([2, 3], np.ones((2, 16)))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 32\)"):
        index.search(np.ones(31), 1)
    with pytest.raises(ValueError, match="got 2 ids for 1 vectors"):
        index.add([2, 3], np.ones((1, DIM)))
    with pytest.raises(ValueError, match="ids must be integers"):
        index.add([2.5], np.ones((1, DIM)))
    with pytest.raises(ValueError, match=r"ids must be >= 0 \(-1 marks a missing result\)"):
        index.add([-1], np.ones((1, DIM)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.add([2], np.full((1, DIM), np.nan))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.ones(DIM), 0)
    with pytest.raises(ValueError, match="kind must be"):
        ConceptIndex(DIM, kind="hnsw")


def test_zero_vectors_padding_and_empty_index_stay_finite():
    index = ConceptIndex(DIM)
    sims, ids = index.search(np.ones((2, DIM)), 3)  # empty: all padding
    assert (ids == -1).all() and (sims == -1.0).all()
    index.add([1, 2], np.vstack([np.zeros(DIM), np.ones(DIM)]).astype(np.float64))
    sims, ids = index.search(np.zeros(DIM), 4)  # a zero query against a zero vector
    assert np.isfinite(sims).all()
    assert list(ids[0]) == [1, 2, -1, -1] or list(ids[0]) == [2, 1, -1, -1]
    np.testing.assert_array_equal(sims[0], [0.0, 0.0, -1.0, -1.0])


def test_single_query_runs_on_one_thread_and_restores_the_setting():
    previous = faiss.omp_get_max_threads()
    index = ConceptIndex.build(np.arange(100), clustered(100, seed=6))
    try:
        faiss.omp_set_num_threads(2)
        index.search(np.ones(DIM), 1)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(previous)


def test_auto_picks_ivf_from_the_threshold():
    x = clustered(2000, seed=7)
    assert ConceptIndex.build(np.arange(999), x[:999], ivf_from=1000).kind == "flat"
    big = ConceptIndex.build(np.arange(1000), x[:1000], ivf_from=1000)
    assert big.kind == "ivf" and big.nlist == default_nlist(1000) and big.is_trained
    # Later adds go into the lists learnt from the first batch.
    big.add(np.arange(1000, 2000), x[1000:])
    assert len(big) == 2000 and big.search(x[1500], 1)[1][0, 0] == 1500


def test_ivf_with_a_given_nlist_trains_explicitly_or_on_first_add():
    x = clustered(1000, seed=8)
    index = ConceptIndex(DIM, kind="ivf", nlist=10, nprobe=10)
    assert not index.is_trained and len(index) == 0
    index.train(x)
    assert index.is_trained and len(index) == 0
    index.add(np.arange(1000), x)
    assert index.search(x[3], 1)[1][0, 0] == 3
    lazy = ConceptIndex(DIM, kind="ivf")  # nlist 0: no lists until it sees data
    with pytest.raises(ValueError, match="no lists until it is trained"):
        lazy.to_bytes()
    with pytest.raises(ValueError, match="needs at least 10 training vectors"):
        ConceptIndex(DIM, kind="ivf", nlist=10).add(np.arange(5), x[:5])
