"""What every index shares: input checks, metrics, the k-best heap, save and load.

Conventions follow faiss, so a learner can switch between the two:

* ``metric`` is ``"ip"`` (inner product, larger is closer), ``"l2"`` (squared Euclidean distance,
  smaller is closer) or ``"cosine"`` (inner product of unit vectors: rows are normalised on the
  way in, both when added and when searched);
* ``D, I = idx.search(q, k)`` returns two ``(nq, k)`` arrays, best first: scores for ip/cosine
  (descending), squared distances for l2 (ascending). Where fewer than k results exist the
  missing slots hold id ``-1`` and score ``-inf`` (ip/cosine) or distance ``+inf`` (l2);
* ids are ``0..n-1`` in add order;
* ``idx.nbytes`` counts the bytes the index holds for the data (vectors, codes, lists, centroids);
* ``idx.save(path)`` and ``type(idx).load(path)`` round-trip to identical search results.

Every search keeps the k best candidates with a size-k min-heap of scores (see
``embedlab.heap``): l2 distances are turned into scores first, ``2 q.x - |x|^2`` (larger is
better, and ``|q - x|^2 = |q|^2 - score``), so one heap serves all metrics. The heap kernel is
compiled with numba, since a Python loop over every candidate would be a thousand times slower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

METRICS = ("ip", "l2", "cosine")


# --------------------------------------------------------------------------- input checks
def check_metric(metric: object) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_int(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """An integer argument in ``[low, high]``, or a clear TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def as_matrix(x: object, dim: int | None, name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(n, dim)`` array, rejecting what cannot be safely used.

    A 1-D array of length ``dim`` is read as one row. Integers and float64 are cast; complex,
    object, string and boolean arrays are a TypeError; a wrong shape, NaN or inf a ValueError.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an (n, d) array of numbers: {exc}") from exc
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers (float32 expected), got dtype {arr.dtype}")
    if arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, d), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (the index dimension), "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))
    norms[norms == 0] = 1.0
    return (x / norms[:, None]).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- the k-best heap
@njit(cache=True, nogil=True)
def _sift_down(hd, hi, row, k):
    """Restore the min-heap (smallest score at the root; ties: larger id nearer the root)."""
    pos = 0
    v = hd[row, 0]
    vid = hi[row, 0]
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and (hd[row, right] < hd[row, child] or (
                hd[row, right] == hd[row, child] and hi[row, right] > hi[row, child])):
            child = right
        c = hd[row, child]
        if c < v or (c == v and hi[row, child] > vid):
            hd[row, pos] = c
            hi[row, pos] = hi[row, child]
            pos = child
        else:
            break
    hd[row, pos] = v
    hi[row, pos] = vid


@njit(cache=True, nogil=True)
def heap_push(hd, hi, row, score, idx):
    """Offer one candidate to row ``row``'s heap; it enters when it beats the worst kept one."""
    k = hd.shape[1]
    if score > hd[row, 0] or (score == hd[row, 0] and idx < hi[row, 0] and idx >= 0):
        hd[row, 0] = score
        hi[row, 0] = idx
        _sift_down(hd, hi, row, k)


@njit(cache=True, nogil=True)
def heap_push_block(hd, hi, ip, rows, ids, xnorm, l2):
    """Push a block of inner products into the heaps of ``rows``.

    ``ip[r, j]`` is the inner product of query ``rows[r]`` with candidate ``ids[j]``; for l2 the
    score is ``2 ip - xnorm[j]`` (the query's own norm is added back at the end).
    """
    for r in range(ip.shape[0]):
        row = rows[r]
        worst = hd[row, 0]
        for j in range(ip.shape[1]):
            s = 2.0 * ip[r, j] - xnorm[j] if l2 else ip[r, j]
            if s > worst:
                heap_push(hd, hi, row, s, ids[j])
                worst = hd[row, 0]


def new_heaps(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty heaps for ``nq`` queries: scores ``-inf``, ids ``-1``."""
    return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)


def finish_heaps(hd: np.ndarray, hi: np.ndarray, metric: str,
                 qnorm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sort each heap best first (ties: lower id first) and turn l2 scores into distances."""
    ids_key = np.where(hi < 0, np.iinfo(np.int64).max, hi)
    order = np.lexsort((ids_key, -hd.astype(np.float64)), axis=-1)
    D = np.take_along_axis(hd, order, axis=1)
    I = np.take_along_axis(hi, order, axis=1)  # noqa: E741
    if metric == "l2":
        if qnorm is None:
            raise ValueError("finish_heaps: l2 needs the queries' squared norms")
        with np.errstate(invalid="ignore"):
            D = np.where(I >= 0, np.maximum(qnorm[:, None] - D, 0.0), np.inf)
        D = D.astype(np.float32)
    return D, I


# --------------------------------------------------------------------------- the base class
class Index:
    """The shared skeleton: dimension, metric, training state, checks, save and load.

    Subclasses implement ``_train``, ``_add``, ``_search`` and ``_state``/``_set_state`` (the
    arrays and settings that define them); this class does the checking around them.
    """

    needs_training = False

    def __init__(self, dim: int, metric: str = "l2") -> None:
        self.dim = check_int(dim, "dim")
        self.metric = check_metric(metric)
        self.ntotal = 0
        self.is_trained = not self.needs_training

    # -- public API ------------------------------------------------------------------------
    def train(self, x: object) -> None:
        """Learn what the index needs from sample vectors ``x`` (n, dim)."""
        x = self._prepare(x, "x")
        self._train(x)
        self.is_trained = True

    def add(self, x: object) -> None:
        """Add vectors ``x`` (n, dim); they get ids ``ntotal .. ntotal + n - 1``."""
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__}: call train(x) before add()")
        x = self._prepare(x, "x")
        self._add(x)
        self.ntotal += x.shape[0]

    def search(self, q: object, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """The k best vectors for each query row: ``(D, I)``, both ``(nq, k)``, best first."""
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__}: call train(x) and add(x) before search()")
        k = check_int(k, "k")
        q = self._prepare(q, "q")
        return self._search(q, k, **kwargs)

    def reset(self) -> None:
        """Remove every vector (training is kept)."""
        self._reset()
        self.ntotal = 0

    @property
    def nbytes(self) -> int:
        """Bytes the index holds: stored vectors or codes, ids, centroids and tables."""
        return int(sum(v.nbytes for v in self._state().values() if isinstance(v, np.ndarray)))

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` (a ``.npz`` file: its arrays plus a JSON header)."""
        arrays = {k: v for k, v in self._state().items() if isinstance(v, np.ndarray)}
        config = {k: v for k, v in self._state().items() if not isinstance(v, np.ndarray)}
        header = {"class": type(self).__name__, "dim": self.dim, "metric": self.metric,
                  "ntotal": self.ntotal, "is_trained": self.is_trained, "config": config}
        with open(path, "wb") as fh:
            np.savez(fh, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                     **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Index:
        """Read an index written by ``save``; the file must hold this class."""
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(bytes(f["__header__"]).decode())
            arrays = {k: f[k] for k in f.files if k != "__header__"}
        if header["class"] != cls.__name__:
            raise ValueError(f"{path} holds a {header['class']}, not a {cls.__name__}")
        obj = cls.__new__(cls)
        obj.dim, obj.metric = header["dim"], header["metric"]
        obj.ntotal, obj.is_trained = header["ntotal"], header["is_trained"]
        obj._set_state({**header["config"], **arrays})
        return obj

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(dim={self.dim}, metric={self.metric!r}, ntotal={self.ntotal})"

    # -- helpers for subclasses --------------------------------------------------------------
    def _prepare(self, x: object, name: str) -> np.ndarray:
        arr = as_matrix(x, self.dim, name)
        return normalize_rows(arr) if self.metric == "cosine" else arr

    @property
    def _l2(self) -> bool:
        return self.metric == "l2"

    # -- to implement --------------------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:  # pragma: no cover - trivial default
        pass

    def _add(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, q: np.ndarray, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
