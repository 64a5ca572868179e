"""k closest points: three methods agree with sorting, on ties, duplicates and edge cases."""

import numpy as np
import pytest

from embedlab.heap import (
    HeapCounter,
    k_closest,
    k_closest_argpartition,
    k_closest_heap,
    k_closest_quickselect,
    merge_k_best,
)

METHODS = [k_closest_heap, k_closest_quickselect, k_closest_argpartition]


def _by_sorting(points: np.ndarray, k: int) -> np.ndarray:
    d = (np.asarray(points, dtype=np.float64) ** 2).sum(axis=1)
    return np.lexsort((np.arange(len(d)), d))[:k]


def test_leetcode_examples() -> None:
    assert k_closest([[1, 3], [-2, 2]], 1).tolist() == [[-2.0, 2.0]]
    assert k_closest([[3, 3], [5, -1], [-2, 4]], 2).tolist() == [[3.0, 3.0], [-2.0, 4.0]]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_sorting_on_random_points(method, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(500, 3)) * 10.0 ** rng.integers(-3, 6)
    for k in (1, 7, 100, 500):
        assert method(pts, k).tolist() == _by_sorting(pts, k).tolist()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_ties_and_duplicates_break_by_index(method) -> None:
    # eight points at distance 5, two exact duplicates, the origin twice
    pts = np.array([[3, 4], [4, 3], [-3, 4], [0, 5], [5, 0], [0, 0], [3, 4], [0, -5], [0, 0],
                    [-4, -3], [1, 1]])
    for k in range(1, len(pts) + 1):
        assert method(pts, k).tolist() == _by_sorting(pts, k).tolist()
    assert method(pts, 3).tolist() == [5, 8, 10]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_negative_and_large_coordinates(method) -> None:
    pts = np.array([[-1e150, 0.0], [1e150, 1e150], [-3.0, -4.0], [1e-300, -1e-300]])
    assert method(pts, 2).tolist() == [3, 2]
    assert method(pts, 4).tolist() == [3, 2, 0, 1]


@pytest.mark.parametrize("method", METHODS + [k_closest], ids=lambda m: m.__name__)
def test_bad_input_is_a_clear_error(method) -> None:
    pts = np.ones((4, 2))
    with pytest.raises(ValueError, match="k must be >= 1"):
        method(pts, 0)
    with pytest.raises(ValueError, match=r"k must be <= the number of points \(4\)"):
        method(pts, 5)
    with pytest.raises(ValueError, match="2-D"):
        method(np.ones(4), 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        method(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(TypeError, match="k must be an integer"):
        method(pts, 1.5)
    with pytest.raises(TypeError, match="numbers"):
        method(np.array([["a", "b"]]), 1)


def test_heap_operations_grow_like_n_log_k() -> None:
    """Random order: the expected number of replacements is about k ln(n/k)."""
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(20_000, 2))
    for k in (10, 100):
        c = HeapCounter()
        k_closest_heap(pts, k, counter=c)
        assert c.pushes == k and c.comparisons == len(pts) - k
        expected = k * np.log(len(pts) / k)
        assert 0.6 * expected < c.replaces < 1.6 * expected


def test_merge_k_best_distances_and_scores() -> None:
    shard_a = ([0.1, 0.4, 0.9], [10, 11, 12])
    shard_b = ([0.2, 0.3, 5.0], [20, 21, -1])
    d, i = merge_k_best([shard_a, shard_b], 4)
    assert i.tolist() == [10, 20, 21, 11] and np.allclose(d, [0.1, 0.2, 0.3, 0.4])
    s, j = merge_k_best([([0.9, 0.5], [1, 2]), ([0.7], [3])], 5, largest=True)
    assert j.tolist() == [1, 3, 2, -1, -1] and s[3] == -np.inf
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        merge_k_best([shard_a], 0)
    with pytest.raises(ValueError, match="shard 0: 2 scores but 1 ids"):
        merge_k_best([([0.1, 0.2], [1])], 1)


def test_merge_equals_global_search() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(1000, 4))
    shards = np.array_split(np.arange(1000), 7)
    lists = []
    for ids in shards:
        local = k_closest_heap(pts[ids], 10)
        lists.append(((pts[ids][local] ** 2).sum(1), ids[local]))
    _, merged = merge_k_best(lists, 10)
    assert merged.tolist() == _by_sorting(pts, 10).tolist()


def test_expected_replacements_matches_the_formula_and_a_simulation() -> None:
    from embedlab.heap import expected_replacements

    mean, var = expected_replacements(1000, 10)
    h = lambda m: sum(1 / i for i in range(1, m + 1))  # noqa: E731
    assert mean == pytest.approx(10 * (h(1000) - h(10)))
    assert 0 < var < mean
    rng = np.random.default_rng(7)
    counts = []
    for _ in range(300):
        c = HeapCounter()
        k_closest_heap(rng.normal(size=(1000, 2)), 10, counter=c)
        counts.append(c.replaces)
    se = np.sqrt(var / len(counts))
    assert abs(np.mean(counts) - mean) < 4 * se
    assert np.var(counts) == pytest.approx(var, rel=0.3)
    assert expected_replacements(5, 5) == (0.0, 0.0)
    with pytest.raises(ValueError, match="k <= n"):
        expected_replacements(3, 4)
    with pytest.raises(TypeError, match="k"):
        expected_replacements(10, 2.5)
