"""Two towers: one recipe for pairs of anything (images and captions, users and items).

A two-tower model embeds each side of a pair with its own encoder ("tower") into one shared
space and scores a pair by the cosine (or dot product) of the two vectors. Training is the
chapter-05 contrastive recipe: a batch of B true pairs, every other row's partner as a negative.

**CLIP** (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", fig. 3) trains an image tower and a text tower with the *symmetric* InfoNCE loss:
cross-entropy of the B x B similarity matrix along its rows (image -> text) and along its columns
(text -> image), averaged,

    L = 1/2 [ CE(S / tau, diag) + CE(S^T / tau, diag) ],  S_ij = cos(f(x_i), g(t_j)).

Classes then become sentences: to classify an image "zero-shot", embed one caption per class
("a handwritten seven") and take the class whose caption is nearest. Here the images are
sklearn's 8 x 8 digits and the captions are short template sentences; ``digit_captions``
writes them.

**Two-tower recommenders** (Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations", eqs. 3-5) train a user tower and an item tower on observed
(user, item) interactions with in-batch negatives. In a batch drawn from the interaction log an
item appears as a negative in proportion to its frequency q_j, so popular items are pushed down
far more often than rare ones: the model learns s(u, i) ~ log P(i | u) - log q_i, a
pointwise-mutual-information score that under-ranks popular items. The **logQ correction**
subtracts log q_j from every logit during training,

    s^c(u_i, v_j) = s(u_i, v_j) - log q_j,

which turns the sampled softmax back into an (asymptotically) unbiased estimate of the full
softmax, so s(u, i) learns log P(i | u) itself. At serving time the plain score s is used.
``synthetic_interactions`` builds data with a known P(i | u) and a Zipf popularity skew, so
recall@10 can be measured against the true top 10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.contrastive import check_embeddings, info_nce
from embedlab.text import tokenize

__all__ = [
    "DIGIT_NAMES",
    "PUBLISHED_EMBEDDERS",
    "TEMPLATES",
    "ImageTower",
    "Interactions",
    "RecommenderTowers",
    "TextTower",
    "TwoTower",
    "digit_captions",
    "in_batch_softmax_loss",
    "item_log_q",
    "published_embedders",
    "recall_against_truth",
    "recall_per_user",
    "recommend_top_k",
    "retrieve_images",
    "synthetic_interactions",
    "train_clip",
    "train_recommender",
    "two_tower_loss",
    "zero_shot_accuracy",
    "zero_shot_predict",
]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# captions seen in training; the zero-shot prompt is a sentence the model never saw whole
TEMPLATES = (
    "a handwritten {}",
    "the digit {}",
    "a scanned {}",
    "a small picture of a {}",
    "someone wrote a {}",
    "an image of the number {}",
)


def _check_int(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_labels(labels: object) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise ValueError("labels must be integers 0..9")
    return y.astype(np.int64)


def digit_captions(labels, templates: Sequence[str] = TEMPLATES, seed: int = 0) -> list[str]:
    """One caption per label, each from a template drawn at random (seeded): ``"a scanned two"``."""
    y = _check_labels(labels)
    if isinstance(templates, str) or len(templates) == 0:
        raise ValueError("templates must be a non-empty list of strings with one '{}'")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"each template needs exactly one '{{}}', got {t!r}")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(templates), size=len(y))
    return [templates[p].format(DIGIT_NAMES[c]) for p, c in zip(pick, y, strict=True)]


# =========================================================================== CLIP on digits
class ImageTower(torch.nn.Module):
    """An MLP from an 8 x 8 image (values 0..16) to a ``dim``-d vector."""

    def __init__(self, dim: int = 32, hidden: int = 128, pixels: int = 64):
        super().__init__()
        self.pixels = _check_int(pixels, "pixels")
        self.net = torch.nn.Sequential(
            torch.nn.Linear(self.pixels, _check_int(hidden, "hidden")), torch.nn.ReLU(),
            torch.nn.Linear(hidden, _check_int(dim, "dim")))

    def forward(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.pixels:
            raise ValueError(f"images must have {self.pixels} pixels each, got {x.shape[1]}")
        dev = next(self.parameters()).device
        return self.net(x.to(dev) / 16.0)


class TextTower(torch.nn.Module):
    """Bag of word embeddings (mean over known words) and a linear map to ``dim``."""

    def __init__(self, words: Sequence[str], dim: int = 32, width: int = 32):
        super().__init__()
        vocab = sorted(set(words))
        if not vocab:
            raise ValueError("words must hold at least one word")
        self.index = {w: i + 1 for i, w in enumerate(vocab)}    # 0 = unknown word
        self.embedding = torch.nn.EmbeddingBag(len(vocab) + 1, _check_int(width, "width"),
                                               mode="mean", padding_idx=0)
        self.proj = torch.nn.Linear(width, _check_int(dim, "dim"))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            toks = [self.index.get(w, 0) for w in tokenize(t)]
            ids.extend(toks or [0])          # an empty text pools the unknown-word row
        dev = self.proj.weight.device
        ids_t = torch.tensor(ids, dtype=torch.long, device=dev)
        off_t = torch.tensor(offsets, dtype=torch.long, device=dev)
        return self.proj(self.embedding(ids_t, off_t))


class TwoTower(torch.nn.Module):
    """An image tower and a text tower whose outputs live in one space (unit vectors)."""

    def __init__(self, image_tower: torch.nn.Module, text_tower: torch.nn.Module):
        super().__init__()
        self.image_tower = image_tower
        self.text_tower = text_tower

    def encode_images(self, images) -> torch.Tensor:
        return F.normalize(self.image_tower(images), dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(self.text_tower(texts), dim=-1)

    @torch.no_grad()
    def embed_images(self, images) -> np.ndarray:
        self.eval()
        return self.encode_images(images).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.eval()
        return self.encode_texts(list(texts)).cpu().numpy().astype(np.float32)


def two_tower_loss(image_emb, text_emb, temperature: float = 0.1) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: the mean of the image->text and text->image cross-entropies.

    Row i of ``image_emb`` and row i of ``text_emb`` are a true pair; cosine similarity inside.
    Equal to ``info_nce(image_emb, text_emb, temperature=temperature, symmetric=True)``.
    """
    a = check_embeddings(image_emb, "image_emb")
    b = check_embeddings(text_emb, "text_emb")
    if a.shape != b.shape:
        raise ValueError(f"text_emb must have the shape of image_emb {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")
    return info_nce(a, b, temperature=temperature, symmetric=True)


def train_clip(model: TwoTower, images, captions: Sequence[str], *, steps: int,
               batch_size: int = 64, lr: float = 3e-3, temperature: float = 0.1, seed: int = 0,
               device: str | None = None, progress: bool = True) -> list[float]:
    """Train both towers on (image, caption) pairs with ``two_tower_loss``; returns step losses.

    Each step draws ``batch_size`` pairs at random (seeded); the other pairs' captions are the
    negatives (including captions of the same class: CLIP's "false negatives", kept here).
    """
    from embedlab.encoders import train_encoder

    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    if len(x) != len(captions):
        raise ValueError(f"images and captions must have the same length, got {len(x)} and "
                         f"{len(captions)}")
    batch_size = _check_int(batch_size, "batch_size", low=2)
    if batch_size > len(x):
        raise ValueError(f"batch_size must be <= the number of pairs ({len(x)}), got {batch_size}")
    rng = np.random.default_rng(seed)
    caps = list(captions)

    def batches():
        while True:
            yield rng.choice(len(x), size=batch_size, replace=False)

    def loss_fn(m, idx):
        return two_tower_loss(m.encode_images(x[idx]), m.encode_texts([caps[i] for i in idx]),
                              temperature)

    return train_encoder(model, batches(), loss_fn, steps=_check_int(steps, "steps"), lr=lr,
                         seed=seed, device=device, progress=progress)


def zero_shot_predict(model: TwoTower, images, template: str = "a photo of a {}",
                      class_names: Sequence[str] = DIGIT_NAMES) -> np.ndarray:
    """Class index of each image: the class whose prompt ``template.format(name)`` is nearest."""
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"template must be a string with exactly one '{{}}', got {template!r}")
    prompts = model.embed_texts([template.format(c) for c in class_names])
    return np.argmax(model.embed_images(images) @ prompts.T, axis=1)


def zero_shot_accuracy(model: TwoTower, images, labels, template: str = "a photo of a {}",
                       class_names: Sequence[str] = DIGIT_NAMES) -> float:
    """Fraction of images whose zero-shot prediction is their label."""
    y = np.asarray(labels)
    pred = zero_shot_predict(model, images, template, class_names)
    if len(pred) != len(y):
        raise ValueError(f"labels must have one entry per image ({len(pred)}), got {len(y)}")
    return float((pred == y).mean())


def retrieve_images(model: TwoTower, queries: Sequence[str], images, k: int = 10) -> np.ndarray:
    """Text -> image search: the ids of the ``k`` images nearest each query, best first."""
    img = model.embed_images(images)
    k = _check_int(k, "k")
    if k > len(img):
        raise ValueError(f"k must be <= the number of images ({len(img)}), got {k}")
    scores = model.embed_texts(queries) @ img.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


# =========================================================================== recommender
@dataclass
class Interactions:
    """Synthetic interactions with a known preference distribution.

    ``true_logits[u, i] = beta * <user_factors[u], item_factors[i]> + log popularity[i]`` and
    P(i | u) = softmax over items of ``true_logits[u]``; every (user, item) row of ``pairs`` was
    drawn from it. ``popularity`` is a Zipf law over items (item 0 the most popular).
    """

    pairs: np.ndarray          # (n, 2) int64: user id, item id
    user_factors: np.ndarray   # (n_users, dim)
    item_factors: np.ndarray   # (n_items, dim)
    popularity: np.ndarray     # (n_items,), sums to 1
    true_logits: np.ndarray    # (n_users, n_items)

    @property
    def n_users(self) -> int:
        return len(self.user_factors)

    @property
    def n_items(self) -> int:
        return len(self.item_factors)

    def true_top_k(self, k: int = 10) -> np.ndarray:
        """Each user's k most probable items: the ground truth recall is measured against."""
        k = _check_int(k, "k")
        return np.argsort(-self.true_logits, axis=1, kind="stable")[:, :k]


def synthetic_interactions(n_users: int = 1000, n_items: int = 500, dim: int = 16,
                           per_user: int = 40, zipf: float = 1.0, beta: float = 4.0,
                           seed: int = 0) -> Interactions:
    """Draw ``per_user`` interactions for every user from a known P(i | u) with popularity skew.

    Users and items get random unit factors; an item's popularity is proportional to
    ``rank^-zipf`` (``zipf = 0``: no skew); ``beta`` scales how much taste matters against
    popularity. Deterministic under ``seed``.
    """
    n_users, n_items = _check_int(n_users, "n_users"), _check_int(n_items, "n_items", low=2)
    dim, per_user = _check_int(dim, "dim"), _check_int(per_user, "per_user")
    if not (isinstance(zipf, (int, float)) and zipf >= 0 and math.isfinite(zipf)):
        raise ValueError(f"zipf must be a finite number >= 0, got {zipf!r}")
    if not (isinstance(beta, (int, float)) and beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = rng.normal(size=(n_items, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pop = np.arange(1, n_items + 1, dtype=np.float64) ** -float(zipf)
    pop /= pop.sum()
    logits = beta * (u @ v.T) + np.log(pop)[None, :]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # inverse-CDF sampling, one row of uniforms per user
    cdf = np.cumsum(p, axis=1)
    draws = rng.random((n_users, per_user))
    items = np.minimum((cdf[:, None, :] < draws[:, :, None]).sum(axis=2), n_items - 1)
    users = np.repeat(np.arange(n_users), per_user)
    pairs = np.stack([users, items.ravel()], axis=1).astype(np.int64)
    pairs = pairs[rng.permutation(len(pairs))]
    return Interactions(pairs, u.astype(np.float32), v.astype(np.float32), pop, logits)


def item_log_q(pairs, n_items: int, smoothing: float = 1.0) -> np.ndarray:
    """log of each item's sampling probability in a batch drawn from ``pairs``: its frequency.

    ``smoothing`` is added to every count (so an unseen item is not log 0).
    """
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pairs must have shape (n, 2), got {p.shape}")
    counts = np.bincount(p[:, 1], minlength=_check_int(n_items, "n_items")).astype(np.float64)
    counts += smoothing
    return np.log(counts / counts.sum())


def in_batch_softmax_loss(user_emb, item_emb, log_q=None, temperature: float = 0.05
                          ) -> torch.Tensor:
    """In-batch sampled softmax for two towers, with the optional logQ correction.

    ``user_emb``, ``item_emb``: (B, d), row i a true pair; cosine similarity / ``temperature``.
    ``log_q``: None or (B,), the log sampling probability of each row's item; when given,
    column j's logits get ``- log_q[j]`` (Yi et al. 2019, eq. 5) before the cross-entropy.
    """
    u = check_embeddings(user_emb, "user_emb")
    v = check_embeddings(item_emb, "item_emb")
    if u.shape != v.shape:
        raise ValueError(f"item_emb must have the shape of user_emb {tuple(u.shape)}, "
                         f"got {tuple(v.shape)}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    logits = F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / temperature
    if log_q is not None:
        lq = torch.as_tensor(log_q, dtype=logits.dtype, device=logits.device)
        if lq.shape != (u.shape[0],):
            raise ValueError(f"log_q must have shape ({u.shape[0]},), got {tuple(lq.shape)}")
        if not bool(torch.isfinite(lq).all()):
            raise ValueError("log_q contains NaN or inf (did an item have zero frequency?)")
        logits = logits - lq[None, :]
    labels = torch.arange(u.shape[0], device=u.device)
    return F.cross_entropy(logits, labels)


class RecommenderTowers(torch.nn.Module):
    """A user tower and an item tower: one embedding table each (ids in, unit vectors out)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 32, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.users = torch.nn.Embedding(_check_int(n_users, "n_users"), _check_int(dim, "dim"))
        self.items = torch.nn.Embedding(_check_int(n_items, "n_items"), dim)
        with torch.no_grad():
            self.users.weight.copy_(torch.randn(n_users, dim, generator=g) * 0.1)
            self.items.weight.copy_(torch.randn(n_items, dim, generator=g) * 0.1)

    def user_vectors(self, ids=None) -> torch.Tensor:
        w = self.users.weight if ids is None else self.users(ids)
        return F.normalize(w, dim=-1)

    def item_vectors(self, ids=None) -> torch.Tensor:
        w = self.items.weight if ids is None else self.items(ids)
        return F.normalize(w, dim=-1)


def train_recommender(model: RecommenderTowers, pairs, *, steps: int, batch_size: int = 256,
                      lr: float = 0.05, temperature: float = 0.05, log_q=None, seed: int = 0,
                      device: str | None = None, progress: bool = True) -> list[float]:
    """Train the towers with in-batch negatives; ``log_q`` (n_items,) turns on the correction."""
    from embedlab.encoders import train_encoder

    p = np.asarray(pairs, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
        raise ValueError(f"pairs must have shape (n >= 2, 2), got {p.shape}")
    batch_size = _check_int(batch_size, "batch_size", low=2)
    if batch_size > len(p):
        raise ValueError(f"batch_size must be <= len(pairs) ({len(p)}), got {batch_size}")
    lq = None if log_q is None else torch.as_tensor(np.asarray(log_q), dtype=torch.float32)
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            yield p[rng.choice(len(p), size=batch_size, replace=False)]

    def loss_fn(m, b):
        dev = m.users.weight.device
        u_ids = torch.as_tensor(b[:, 0], device=dev)
        i_ids = torch.as_tensor(b[:, 1], device=dev)
        q = None if lq is None else lq.to(dev)[i_ids]
        return in_batch_softmax_loss(m.users(u_ids), m.items(i_ids), q, temperature)

    return train_encoder(model, batches(), loss_fn, steps=_check_int(steps, "steps"), lr=lr,
                         seed=seed, device=device, progress=progress)


@torch.no_grad()
def recommend_top_k(model: RecommenderTowers, k: int = 10, users=None) -> np.ndarray:
    """Each user's ``k`` best items by the plain tower score (no correction at serving time)."""
    k = _check_int(k, "k")
    u = model.user_vectors()
    if users is not None:
        u = u[torch.as_tensor(np.asarray(users), dtype=torch.long, device=u.device)]
    scores = (u @ model.item_vectors().T).cpu().numpy()
    if k > scores.shape[1]:
        raise ValueError(f"k must be <= the number of items ({scores.shape[1]}), got {k}")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall_per_user(recommended, truth) -> np.ndarray:
    """|recommended_u ∩ truth_u| / |truth_u| for each user u, as a float64 array (both arguments
    (n_users, k) id arrays); two models' arrays on the same users feed
    :func:`embedlab.stats.paired_bootstrap`."""
    r, t = np.asarray(recommended), np.asarray(truth)
    if r.ndim != 2 or t.ndim != 2 or r.shape[0] != t.shape[0]:
        raise ValueError(f"recommended and truth must be (n_users, k) arrays with the same "
                         f"number of rows, got {r.shape} and {t.shape}")
    if t.shape[1] == 0:
        raise ValueError("truth must hold at least one item per user")
    return np.array([len(set(a) & set(b)) / len(b)
                     for a, b in zip(r.tolist(), t.tolist(), strict=True)], dtype=np.float64)


def recall_against_truth(recommended, truth) -> float:
    """Mean over users of |recommended_u ∩ truth_u| / |truth_u| (both (n_users, k) id arrays)."""
    return float(np.mean(recall_per_user(recommended, truth)))


# =========================================================================== published embedders
# Code, image and audio embedders as their authors publish them: release date, output size,
# input length, and one benchmark figure with the page it comes from. A field the cited pages
# do not give is None (shown as a dash), never a guess.
PUBLISHED_EMBEDDERS: tuple[dict, ...] = (
    {"modality": "code", "model": "CodeBERT (Feng et al.)", "released": "2020-02",
     "dims": 768, "context": "256 code tokens (search setting)",
     "benchmark": "CodeSearchNet (filtered), MRR overall, fine-tuned as a bi-encoder",
     "figure": 0.693,
     "source": "microsoft/CodeBERT, GraphCodeBERT/codesearch/README.md, results table"},
    {"modality": "code", "model": "GraphCodeBERT (Guo et al.)", "released": "2020-09",
     "dims": 768, "context": "256 code tokens (search setting)",
     "benchmark": "CodeSearchNet (filtered), MRR overall, fine-tuned as a bi-encoder",
     "figure": 0.713,
     "source": "microsoft/CodeBERT, GraphCodeBERT/codesearch/README.md, results table"},
    {"modality": "code", "model": "voyage-code-2", "released": "2024-01", "dims": 1536,
     "context": "16,000 tokens", "benchmark": None, "figure": None,
     "source": "Voyage AI documentation, text embedding models table; launch month from the "
               "voyage-code-3 announcement"},
    {"modality": "code", "model": "voyage-code-3", "released": "2024-12",
     "dims": "1024 (256, 512, 2048)", "context": "32,000 tokens",
     "benchmark": "32 code retrieval datasets, average gain over OpenAI-v3-large (%)",
     "figure": 13.80,
     "source": "Voyage AI, 'voyage-code-3: more accurate code retrieval with lower dimensional, "
               "quantized embeddings', 4 December 2024"},
    {"modality": "code", "model": "NV-EmbedCode-7b-v1 (NVIDIA)", "released": None, "dims": None,
     "context": None, "benchmark": None, "figure": None,
     "source": "nvidia/NV-EmbedCode-7b-v1 model card: a 7B Mistral-based embedding model "
               "optimized for code retrieval"},
    {"modality": "image", "model": "CLIP ViT-L/14 (Radford et al.)", "released": "2021-01",
     "dims": 768, "context": "77 text tokens",
     "benchmark": "ImageNet zero-shot top-1 (%)", "figure": 75.3,
     "source": "the CLIP paper's figure as quoted by mlfoundations/open_clip README; sizes "
               "from open_clip model_configs/ViT-L-14.json"},
    {"modality": "image", "model": "OpenCLIP ViT-H/14, LAION-2B (Cherti et al.)",
     "released": "2022", "dims": 1024, "context": "77 text tokens",
     "benchmark": "ImageNet zero-shot top-1 (%)", "figure": 78.0,
     "source": "mlfoundations/open_clip docs/PRETRAINED.md; sizes from "
               "model_configs/ViT-H-14.json"},
    {"modality": "image", "model": "SigLIP So400m/14 at 384 px (Zhai et al.)",
     "released": "2023-03", "dims": 1152, "context": "64 text tokens",
     "benchmark": "ImageNet zero-shot (%), SigLiT variant (locked image tower), paper abstract",
     "figure": 84.5,
     "source": "Zhai et al. 2023, arXiv 2303.15343, abstract; sizes from open_clip "
               "model_configs/ViT-SO400M-14-SigLIP-384.json"},
    {"modality": "audio", "model": "CLAP, 2023 weights (Elizalde et al.)", "released": "2023-09",
     "dims": None, "context": None, "benchmark": "ESC-50 zero-shot accuracy (%)",
     "figure": 93.9, "source": "microsoft/CLAP README (zero_shot_classification.py output, "
                               "version 2023)"},
    {"modality": "audio", "model": "LAION-CLAP (Wu et al.)", "released": "2022-11",
     "dims": 512, "context": "under 10 s of audio (non-fusion checkpoint)",
     "benchmark": "ESC-50 zero-shot R@1, first official split", "figure": 0.9275,
     "source": "LAION-AI/CLAP README; projection size from transformers' ClapConfig default"},
    {"modality": "audio", "model": "Whisper large, encoder (Radford et al.)",
     "released": "2022-09", "dims": 1280, "context": "30 s of audio (1,500 frames)",
     "benchmark": None, "figure": None,
     "source": "openai/whisper model card (1550 M parameters, 680,000 hours of training "
               "audio); encoder width and audio context from the model's dimensions"},
)


def published_embedders(modality: str | None = None) -> list[dict]:
    """Fresh copies of :data:`PUBLISHED_EMBEDDERS` rows (all, or one ``modality``: ``"code"``,
    ``"image"`` or ``"audio"``). Each row: model, release month, output size, input length,
    one published benchmark figure and the page it comes from (None where that page is silent)."""
    kinds = sorted({r["modality"] for r in PUBLISHED_EMBEDDERS})
    if modality is not None and modality not in kinds:
        raise ValueError(f"modality must be None or one of {kinds}, got {modality!r}")
    return [dict(r) for r in PUBLISHED_EMBEDDERS if modality in (None, r["modality"])]
