"""An embedding space you can query: a word's neighbours and an analogy's arrow, in 2-D.

Chapter 01's explorer. Type a word; the figure shows its nearest neighbours by cosine and the
arrow of an analogy: for a relation ``a -> b`` (``man -> woman``) the answer to "``a`` is to ``b``
as the word is to ?" by 3CosAdd (Mikolov, Yih and Zweig 2013; Levy and Goldberg 2014, eq. 3),
drawn next to the arrow ``a -> b`` itself. When relations are directions, the two arrows are
roughly parallel.

:func:`word_view` is the pure function behind the explorer: word in, numbers out (neighbours,
2-D coordinates, arrow endpoints), nothing drawn. The 2-D plane is chosen for *these* words
(:func:`relation_plane`): its first axis is the relation's own direction, the second the
principal direction (PCA, :func:`embedlab.geometry.pca_project`) of what the first leaves, so a new
word gives a new plane and both arrows show how much of the relation they carry.
:func:`plot_word_view` draws a view; :func:`vector_strips` draws vectors as rows of coloured
cells, the picture Jay Alammar uses in *The Illustrated Word2vec* (2019) before any formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedlab.geometry import WordIndex, analogy, as_vectors, most_similar, pca_project

__all__ = ["WordView", "word_view", "relation_plane", "plot_word_view", "render_word",
           "vector_strips"]


@dataclass(frozen=True)
class WordView:
    """What the explorer shows for one word.

    ``labels`` are the words drawn and ``xy`` their 2-D coordinates, row for row: the word
    first, then its neighbours (best first), then the relation's two words and the analogy's
    answer where they are not already on show. ``neighbours`` are ``(word, cosine)`` pairs.
    ``relation_arrow`` and ``analogy_arrow`` are ``(start_xy, end_xy)``: ``a -> b`` and
    word ``-> answer``; ``answer`` is the analogy's best word.
    """

    word: str
    neighbours: list[tuple[str, float]]
    relation: tuple[str, str]
    answer: str
    labels: list[str]
    xy: np.ndarray
    relation_arrow: tuple[np.ndarray, np.ndarray]
    analogy_arrow: tuple[np.ndarray, np.ndarray]

    def position(self, word: str) -> np.ndarray:
        """The 2-D coordinates of a word on show."""
        if word not in self.labels:
            raise ValueError(f"word {word!r} is not on show; on show: {self.labels}")
        return self.xy[self.labels.index(word)]


def word_view(index: WordIndex, word: str, k: int = 8,
              relation: Sequence[str] = ("man", "woman"),
              restrict_vocab: int | None = None) -> WordView:
    """The neighbours of ``word``, the analogy ``relation[0] : relation[1] :: word : ?`` and the
    2-D coordinates of every word on show.

    ``index`` is a :class:`embedlab.geometry.WordIndex`; ``word`` is stripped and lower-cased
    (GloVe's vocabulary is lower case); ``k`` neighbours by cosine, the word itself excluded;
    ``restrict_vocab`` searches only the first that many (most frequent) rows, for neighbours and
    answer alike. An unknown word raises :class:`embedlab.geometry.UnknownWordError` naming it.
    """
    if not isinstance(index, WordIndex):
        raise TypeError(f"index must be an embedlab.geometry.WordIndex, got {type(index).__name__}")
    if not isinstance(word, str):
        raise TypeError(f"word must be a str, got {type(word).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if isinstance(relation, str) or len(relation) != 2 or not all(
            isinstance(w, str) for w in relation):
        raise ValueError(f"relation must be two words (a, b), got {relation!r}")
    word = word.strip().lower()
    a, b = (w.strip().lower() for w in relation)
    index.index(word)                       # an unknown word raises here, naming it
    neighbours = most_similar(index, None, word, topn=int(k), restrict_vocab=restrict_vocab)
    answer = analogy(index, None, a, b, word, topn=1, restrict_vocab=restrict_vocab)[0][0]
    labels: list[str] = []
    for w in [word, *(n for n, _ in neighbours), a, b, answer]:
        if w not in labels:
            labels.append(w)
    xy = relation_plane(index.unit[[index.index(w) for w in labels]],
                        index.unit[index.index(b)] - index.unit[index.index(a)])
    at = {w: xy[i] for i, w in enumerate(labels)}
    return WordView(word, neighbours, (a, b), answer, labels, xy,
                    (at[a], at[b]), (at[word], at[answer]))


def relation_plane(x: object, direction: object) -> np.ndarray:
    """2-D coordinates of the rows of ``x``: along ``direction``, then along the principal
    direction of what is left once that component is removed (both after centring the rows).

    A relation's offset lies entirely on the first axis, so every arrow is drawn with the share of
    that relation it carries; a projection is linear, so equal offsets stay equal arrows.
    """
    arr = as_vectors(x, "x", ndim=2).astype(np.float64)
    d = as_vectors(direction, "direction", ndim=1).astype(np.float64)
    if d.shape[0] != arr.shape[1]:
        raise ValueError(f"direction has {d.shape[0]} dimensions, x has {arr.shape[1]}")
    norm = np.linalg.norm(d)
    if norm == 0:
        raise ValueError("direction is a zero vector: the relation's two words coincide")
    d = d / norm
    centred = arr - arr.mean(axis=0)
    along = centred @ d
    rest = centred - np.outer(along, d)
    if arr.shape[0] < 2 or not np.any(rest):
        return np.column_stack([along, np.zeros_like(along)])
    return np.column_stack([along, pca_project(rest, 1, center=False)[:, 0]])


def plot_word_view(view: WordView, ax: Any = None) -> Any:
    """Draw a :class:`WordView`: the word, its neighbours and the two arrows; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5.5))
    near = {n for n, _ in view.neighbours}
    kinds = [("the word", [view.word], "tab:red"),
             ("neighbours (cosine)", [w for w in view.labels if w in near], "tab:blue"),
             ("relation and answer", [w for w in view.labels
                                      if w != view.word and w not in near], "tab:green")]
    for name, group, colour in kinds:
        pts = np.array([view.position(w) for w in group]).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=30, color=colour, label=name)
        for w, (x, y) in zip(group, pts, strict=True):
            ax.annotate(w, (x, y), xytext=(4, 3), textcoords="offset points", color=colour)
    a, b = view.relation
    for (start, end), colour in ((view.relation_arrow, "tab:green"),
                                 (view.analogy_arrow, "tab:red")):
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
    ax.set(title=f"'{view.word}': {len(view.neighbours)} nearest words; "
                 f"{a} -> {b} applied to it gives '{view.answer}'",
           xlabel=f"along {a} -> {b} (unit vectors, centred)",
           ylabel="principal direction of the rest")
    ax.legend(loc="best", fontsize=8)
    return ax.figure


def render_word(index: WordIndex, word: str, relation: str = "man -> woman", k: int = 8,
                restrict_vocab: int | None = None) -> Any:
    """The explorer's figure for one state of its controls: :func:`word_view` drawn.

    ``relation`` is written ``"a -> b"``. A word the vocabulary lacks (a half-typed word, a typo)
    draws an empty figure whose title says so, instead of raising, so the explorer keeps working.
    """
    import matplotlib.pyplot as plt

    from embedlab.geometry import UnknownWordError

    if not isinstance(relation, str) or relation.count("->") != 1:
        raise ValueError(f"relation must be written 'a -> b', got {relation!r}")
    pair = tuple(part.strip() for part in relation.split("->"))
    fig, ax = plt.subplots(figsize=(7, 5.5))
    try:
        plot_word_view(word_view(index, word, k, pair, restrict_vocab), ax)
    except UnknownWordError as err:
        ax.set(title=f"{err}: type another word", xlabel="principal direction 1",
               ylabel="principal direction 2")
    return fig


def vector_strips(matrix: object, row_labels: Sequence[str],
                  column_labels: Sequence[str] | None = None, ax: Any = None,
                  title: str = "vectors as coloured strips") -> Any:
    """Each row of ``matrix`` as a strip of coloured cells (red positive, blue negative, white 0).

    The colour scale is symmetric around 0 and shared by all rows, so equal colours in one column
    mean equal values. Returns the figure.
    """
    import matplotlib.pyplot as plt

    arr = as_vectors(matrix, "matrix", ndim=2)
    if len(row_labels) != arr.shape[0]:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {arr.shape[0]} rows")
    if column_labels is not None and len(column_labels) != arr.shape[1]:
        raise ValueError(f"column_labels has {len(column_labels)} entries for {arr.shape[1]} "
                         "columns")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(14, 2 + 0.25 * arr.shape[1]),
                                      0.5 + 0.45 * arr.shape[0]))
    top = float(np.abs(arr).max()) or 1.0
    im = ax.imshow(arr, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
    ax.set_yticks(range(arr.shape[0]), list(row_labels))
    if column_labels is not None:
        ax.set_xticks(range(arr.shape[1]), list(column_labels), rotation=30, ha="right")
    ax.set(title=title, xlabel="dimension" if column_labels is None else "trait",
           ylabel="item")
    ax.figure.colorbar(im, ax=ax, label="value of the coordinate")
    return ax.figure
