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

Every search keeps the k best candidates with one small selection shared by all indexes
(``embedlab.index.kernels.topk_push``): l2 distances are turned into scores first,
``2 q.x - |x|^2`` (larger is better, and ``|q - x|^2 = |q|^2 - score``), so one selection serves
all metrics. It is compiled with numba, since a Python loop over every candidate would be a
thousand times slower. One query (a float32 row) goes straight to a subclass's compiled
``_search_one``: the checks run once, inside the call.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("ip", "l2", "cosine")
MODE_CODES = {"ip": 0, "l2": 1, "cosine": 2}  # the metric as the compiled kernels take it


# --------------------------------------------------------------------------- input checks
def check_metric(metric: object) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_int(value: object, name: str, low: int = 1, high: int | None = None) -> int:
    """An integer argument in ``[low, high]``, or a clear TypeError / ValueError."""
    if type(value) is int and value >= low and (high is None or value <= high):
        return value  # the common case, checked first: this runs on every search call
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


def raise_status(status: int, name: str) -> None:
    """Turn a kernel's status code into the error ``as_matrix`` would have raised."""
    if status != 0:
        raise ValueError(f"{name} contains NaN or inf")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32.

    The norms are summed in float64, so the compiled kernels (``embedlab.index.kernels``), which
    sum in another order, round every row to the same float32 values.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms[norms == 0] = 1.0
    return (x / norms[:, None]).astype(np.float32)


def one_row(q: object, dim: int) -> np.ndarray | None:
    """``q`` as a 1-D float32 row when it already is one query in the index's own layout (a
    C-contiguous float32 array of shape ``(dim,)`` or ``(1, dim)``), else ``None``.

    This is the single-query fast path's only check in Python; the kernel checks the entries
    (NaN, inf) in the same pass that copies them.
    """
    if type(q) is not np.ndarray or q.dtype is not _F32:
        return None
    shape, strides = q.shape, q.strides
    if shape == (dim,) and strides[0] == 4:
        return q
    if shape == (1, dim) and strides[1] == 4:
        return q[0]
    return None


_F32 = np.dtype(np.float32)  # numpy's float32 descriptor: native float32 arrays hold this one


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
        row = one_row(q, self.dim) if self._has_one else None
        if row is not None:  # one query: a single compiled call (embedlab.index.kernels)
            D, I = self._search_one(row, k, **kwargs)  # noqa: E741
            if D is not None:
                return D, I
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

    _has_one = False  # a subclass with a single-query kernel sets this and _search_one

    def _search_one(self, q: np.ndarray, k: int, **kwargs: Any) -> tuple[Any, Any]:
        """One query row (float32, C-contiguous): ``(D, I)`` of shape (1, k), or ``(None,
        None)`` to fall back to ``_search``."""
        return None, None

    @property
    def _mode(self) -> int:
        return MODE_CODES[self.metric]

    def _scratch(self, name: str, n: int, dtype: Any) -> np.ndarray:
        """A working array of at least ``n`` entries, kept per index and thread and reused by
        every search (so a search allocates nothing that grows with the index)."""
        pool = self.__dict__.setdefault("_scratch_pool", {})
        key = (threading.get_ident(), name)
        arr = pool.get(key)
        if arr is None or arr.shape[0] < n:
            arr = pool[key] = np.empty(max(n, 1), dtype)
        return arr

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
