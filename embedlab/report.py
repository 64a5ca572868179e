"""The course report: key results recorded by notebooks, gathered by ``make course``.

A notebook calls ``record("ch17.heap_ops_n1e6_k10", 2.1e7)``. When the notebook runs under
``embedlab course`` the environment variable ``EMBEDLAB_REPORT`` names a JSON-lines file and each
call appends one line to it; the course runner then writes ``build/course/REPORT.md`` with every
notebook's wall time, state and recorded results. In JupyterLab, with no such variable, the values
are kept in memory only (``recorded()`` returns them).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

_RECORDED: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to plain Python, so the value serialises as JSON."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"record: value must be a number, string, list or dict, got {type(value)!r}")


def record(name: str, value: Any) -> None:
    """Record one key result under ``name`` (returns nothing, so a notebook shows nothing)."""
    if not isinstance(name, str) or not name:
        raise ValueError("record: name must be a non-empty string")
    plain = _plain(value)
    _RECORDED[name] = plain
    path = os.environ.get("EMBEDLAB_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": plain}) + "\n")


def recorded() -> dict[str, Any]:
    """Everything recorded in this process so far."""
    return dict(_RECORDED)


def read_records(path: str | Path) -> dict[str, Any]:
    """Read a JSON-lines file written by ``record``; later values of a name win."""
    out: dict[str, Any] = {}
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if "name" in row:
                out[row["name"]] = row["value"]
    return out


def format_value(value: Any) -> str:
    """A short human form of a recorded value for the report table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- claims
class ClaimFailed(AssertionError):
    """A claim that did not hold, raised only under ``EMBEDLAB_STRICT=1``."""


_CLAIMS: list[dict[str, Any]] = []


def strict() -> bool:
    """True when a failing claim must fail the notebook (``EMBEDLAB_STRICT=1``, as in CI)."""
    return os.environ.get("EMBEDLAB_STRICT", "").strip() not in ("", "0", "false", "no")


class Verdict:
    """What :func:`claim` returns: true when the claim holds, false when it does not.

    A notebook cell that ends with ``claim(...)`` shows nothing more than the sentence that
    ``claim`` printed with its mark (a plain ``bool`` would add an ``Out: True`` under it).
    """

    __slots__ = ("id", "holds")

    def __init__(self, id: str, holds: bool) -> None:
        self.id, self.holds = id, holds

    def __bool__(self) -> bool:
        return self.holds

    def __eq__(self, other: object) -> bool:
        return bool(self) == other if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.holds)

    def __repr__(self) -> str:
        return f"Verdict({self.id!r}, holds={self.holds})"

    def _ipython_display_(self) -> None:
        """Display nothing: the sentence and its mark are already printed."""


def claim(id: str, text: str, holds: Any) -> Verdict:
    """State one claim the chapter checks on this run, with its verdict.

    ``text`` is the sentence, built from the run's own numbers (an f-string); ``holds`` is the
    measured verdict. The sentence is printed with a check mark or a cross and recorded (under
    ``EMBEDLAB_REPORT``, as a ``{"claim": id, "text", "holds"}`` line) for the course report. A
    claim that does not hold only warns, so a learner who changes a parameter can read on; under
    ``EMBEDLAB_STRICT=1`` it raises :class:`ClaimFailed` after printing.
    """
    if not isinstance(id, str) or not id:
        raise ValueError("claim: id must be a non-empty string such as 'ch08.ivf_recall'")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("claim: text must be the sentence being claimed")
    if hasattr(holds, "item"):
        holds = holds.item()
    if not isinstance(holds, bool):
        raise TypeError(f"claim: holds must be a bool (the measured verdict), got {type(holds)!r}")
    row = {"id": id, "text": text, "holds": holds}
    _CLAIMS[:] = [c for c in _CLAIMS if c["id"] != id] + [row]
    path = os.environ.get("EMBEDLAB_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"claim": id, "text": text, "holds": holds}) + "\n")
    print(f"{'✓' if holds else '✗'} {text}")
    if not holds:
        if strict():
            raise ClaimFailed(f"claim {id} does not hold: {text}")
        import warnings

        warnings.warn(f"claim {id} does not hold on this run: {text}", stacklevel=2)
    return Verdict(id, holds)


def claims() -> list[dict[str, Any]]:
    """Every claim stated in this process so far (latest verdict per id)."""
    return [dict(c) for c in _CLAIMS]


def read_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims in a JSON-lines report file, in order, the latest verdict per id."""
    out: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if "claim" in row:
                out.pop(row["claim"], None)
                out[row["claim"]] = {"id": row["claim"], "text": row["text"],
                                     "holds": row["holds"]}
    return list(out.values())


# --------------------------------------------------------------------------- the ledger
# The course follows a study session on embeddings and vector search; ../shared/CLAIMS.md lists its
# thirty items. The ledger gives each item a verdict on the session's own statement, computed
# from the figures this course run recorded, with the item's own threshold (a small function per
# item, below). A verdict is one of:
#
#   holds                 every statement of the item that the course measures agrees;
#   fails                 every measured statement is contradicted by the measurement;
#   partly                some agree and some do not, or the direction agrees but not the figure;
#   not measurable here   nothing of the item can be measured on one machine (a managed
#                         service, a learner's skill); the reason says why, with any model;
#   not run               a figure the item needs was not recorded by this run (its chapter did
#                         not run, or does not record it yet): the row names the missing ids.
#
# An item is split into statements ("parts"); each part reads records and claims, states its
# figures and returns its own verdict. The row's verdict combines the parts: any part not run ->
# not run; no part measured -> not measurable here; all measured parts hold -> holds; all
# fail -> fails; otherwise partly.

HOLDS, FAILS, PARTLY = "holds", "fails", "partly"
NOT_MEASURABLE, NOT_RUN = "not measurable here", "not run"
VERDICTS = (HOLDS, FAILS, PARTLY, NOT_MEASURABLE, NOT_RUN)

# Thresholds, one place, each with its reason.
COS_TOL = 0.05           # "cos = 0.92" read as a figure: its two decimals, give or take 0.05
LINEAR_ANALOGY = 0.7     # 3CosAdd accuracy above which "relations are linear" holds outright
                         # (GloVe 300d reaches about 0.7 in Pennington et al. 2014, table 2)
SAME_REGIME = 0.1        # word2vec and GloVe on one corpus "in the same regime": WordSim-353
                         # Spearman within 0.1 (the gap to GloVe 6B is larger)
SIM_GAP = 0.1            # mean cosine, same topic minus other topics, for "similar -> similar"
NN_TASK = 0.5            # retrieval recall@10 and zero-shot accuracy "as nearest-neighbour search":
                         # at least half right, five times chance or more for ten classes
CLUSTER_ARI = 0.5        # adjusted Rand index of k-means clusters against the topics
SIMCSE_MARGIN = 0.02     # Spearman points SimCSE must gain over its start and over dropout 0
TAU_TOL = 0.02           # recall@10 within which a temperature in [0.05, 0.1] counts as best
SPEED_MARGIN = 1.1       # a speed-up must beat 1.1x to count (timing spread on a shared machine)
NORM_INFO = 0.3          # |Spearman(frequency rank, norm)| from which a norm carries information
SECONDS = (1.0, 10.0)    # "seconds per query": from 1 s up to 10 s; tens of seconds is "partly"
DEGREE_FOLLOWS_LOG = 0.5  # degree growth must reach half of log N's growth to "follow log N"
HNSW_MEMORY = (1.5, 2.5)  # "about 2x the raw vectors"
PQ_RATIO_TOL = 0.05      # "32x smaller" within 5% once the ids an index stores are counted
LOSSY = 0.99             # recall@10 below this: PQ is lossy
SPEED_TIE = 1.1          # qps ratio under which two indexes count as equally fast
NEGLIGIBLE = 0.01        # nDCG@10 lost to truncation that counts as negligible: about one
                         # standard error of nDCG@10 over a few hundred queries
FUNNEL_RECOVERS = 0.99   # funnel recall@10 as a share of the full vectors' to count as recovered
MISMATCH = 0.02          # recall@10 lost to chat-style queries that counts as a loss
CHUNK_GAIN = 0.1         # recall@1 that chunking must win back over a truncated document
FP16_COSINE = 0.999      # fp16 query vectors within this cosine of fp32: fine for inference


class Missing(LookupError):
    """A record or claim the ledger needs is not in this run."""


class Evidence:
    """One run's records and claims, remembering which ids each ledger row read."""

    def __init__(self, records: dict[str, Any], claims: dict[str, dict[str, Any]]) -> None:
        self.records, self.claims = dict(records), dict(claims)
        self.read: list[str] = []
        self.missing: list[str] = []
        self.parts: list[dict[str, Any]] = []

    def record(self, *ids: str) -> Any:
        """The value of the first of ``ids`` this run recorded (aliases: a renamed id)."""
        for rid in ids:
            if rid in self.records:
                if rid not in self.read:
                    self.read.append(rid)
                return self.records[rid]
        self.missing.append(ids[0])
        raise Missing(ids[0])

    def claim(self, *ids: str) -> dict[str, Any]:
        """``{"holds", "text"}`` of the first of ``ids`` this run stated."""
        for cid in ids:
            if cid in self.claims:
                if cid not in self.read:
                    self.read.append(cid)
                return self.claims[cid]
        self.missing.append(ids[0])
        raise Missing(ids[0])

    def part(self, statement: str) -> _Part:
        """``with ev.part("..."") as p:`` one statement of the item; a Missing id inside the block
        marks it not run and is swallowed, so the other statements still show their figures."""
        return _Part(self, statement)


class _Part:
    def __init__(self, ev: Evidence, statement: str) -> None:
        self.ev = ev
        self.row = {"statement": statement, "verdict": NOT_RUN, "figures": {}, "reason": ""}

    def __enter__(self) -> _Part:
        self.ev.parts.append(self.row)
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, Missing):
            self.row["verdict"], self.row["reason"] = NOT_RUN, f"`{exc}` not recorded"
            return True
        if isinstance(exc, (KeyError, IndexError, TypeError, ValueError)) and self.ev.read:
            # a record of another shape than the ledger expects (ledger_needs.md gives it)
            last = self.ev.read[-1]
            self.ev.missing.append(f"{last} (shape: {exc!r})")
            self.row["verdict"] = NOT_RUN
            self.row["reason"] = f"`{last}` has another shape than expected ({exc!r})"
            return True
        return False

    def figure(self, name: str, value: Any) -> Any:
        self.row["figures"][name] = _plain(value)
        return value

    def judge(self, verdict: str, reason: str) -> None:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        self.row["verdict"], self.row["reason"] = verdict, reason


def _between(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def _f(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else str(x)


_ITEMS: dict[int, tuple[str, str, Any]] = {}


def _item(number: int, chapter: str, session: str):
    def register(fn):
        _ITEMS[number] = (chapter, session, fn)
        return fn
    return register


# --- Geometry and the progression ---------------------------------------------------------------
@_item(1, "01", "an embedding maps an item to a vector, similar things get similar vectors, and "
       "retrieval, clustering, classification and recommendation become nearest-neighbour search")
def _item_1(ev: Evidence) -> None:
    with ev.part("similar things get similar vectors") as p:
        gap = p.figure("MiniLM mean cosine, same topic minus other topics",
                       ev.record("ch01.minilm_same_topic_minus_other"))
        p.judge(HOLDS if gap >= SIM_GAP else FAILS,
                f"same-topic sentences are {_f(gap, 2)} closer in mean cosine "
                f"(threshold {SIM_GAP})")
    with ev.part("retrieval is nearest-neighbour search") as p:
        r = p.figure("MiniLM headline -> article recall@10", ev.record("ch04.minilm_recall10"))
        p.judge(HOLDS if r >= NN_TASK else FAILS,
                f"the nearest article vector is the right one within the top 10 for {_f(r)} of "
                f"headlines (threshold {NN_TASK})")
    with ev.part("clustering is nearest-neighbour search") as p:
        ari = p.figure("k-means on MiniLM sentence vectors, adjusted Rand index with the topics",
                       ev.record("ch01.kmeans_topic_ari"))
        p.judge(HOLDS if ari >= CLUSTER_ARI else FAILS,
                f"k-means clusters match the topics with ARI {_f(ari)} (threshold {CLUSTER_ARI})")
    with ev.part("classification is nearest-neighbour search") as p:
        acc = p.figure("zero-shot digit accuracy, nearest caption", ev.record(
            "ch15.zero_shot_accuracy"))
        p.judge(HOLDS if acc >= NN_TASK else FAILS,
                f"the nearest caption vector names the digit for {_f(acc)} of images "
                f"(threshold {NN_TASK}; chance 0.1)")
    with ev.part("recommendation is nearest-neighbour search") as p:
        tower = p.figure("two towers + logQ recall@10", ev.record("ch15.recall10_logq"))
        pop = p.figure("most popular recall@10", ev.record("ch15.recall10_popular"))
        p.judge(HOLDS if tower > pop else FAILS,
                f"user -> item nearest neighbours reach recall@10 {_f(tower)} against "
                f"{_f(pop)} for the most popular items")


@_item(2, "01", "cos(king, queen) is about 0.92 and cos(king, banana) about 0.05")
def _item_2(ev: Evidence) -> None:
    kq = kb = None
    with ev.part("cos(king, queen) about 0.92") as p:
        kq = p.figure("cos(king, queen), GloVe 6B 50d", ev.record("ch01.cos_king_queen"))
        p.judge(HOLDS if abs(kq - 0.92) <= COS_TOL else FAILS,
                f"GloVe 6B 50d gives {_f(kq, 2)} (tolerance {COS_TOL})")
    with ev.part("cos(king, banana) about 0.05") as p:
        kb = p.figure("cos(king, banana), GloVe 6B 50d", ev.record("ch01.cos_king_banana"))
        p.judge(HOLDS if abs(kb - 0.05) <= COS_TOL else FAILS,
                f"GloVe 6B 50d gives {_f(kb, 2)}; the related pair still scores "
                f"{_f(kq - kb, 2) if kq is not None else '?'} higher: the figures are one "
                "model's, the ordering is what carries over")


@_item(3, "01", "king - man + woman is close to queen: relations are linear directions")
def _item_3(ev: Evidence) -> None:
    with ev.part("king - man + woman lands on queen") as p:
        ans = p.figure("nearest word to king - man + woman (3CosAdd)",
                       ev.record("ch01.king_man_woman"))
        kept, excluded = ans["inputs_kept"], ans["inputs_excluded"]
        if kept == "queen":
            p.judge(HOLDS, "queen is the nearest word even with the inputs kept")
        elif excluded == "queen":
            p.judge(PARTLY, f"the nearest word is '{kept}'; queen comes first only once the "
                            "three input words are excluded, as analogy benchmarks do")
        else:
            p.judge(FAILS, f"the nearest word is '{kept}', and '{excluded}' with the inputs "
                           "excluded")
    with ev.part("relations are linear directions") as p:
        acc = p.figure("Google analogy accuracy, GloVe 6B 50d (3CosAdd)",
                       ev.record("ch01.analogy_total"))
        p.figure("semantic / syntactic", [ev.record("ch01.analogy_semantic"),
                                          ev.record("ch01.analogy_syntactic")])
        p.judge(HOLDS if acc >= LINEAR_ANALOGY else PARTLY if acc >= 0.3 else FAILS,
                f"one vector offset answers {_f(acc)} of the analogy questions (holds from "
                f"{LINEAR_ANALOGY}): linear for some relations, not all")


@_item(4, "02", "word2vec (2013): CBOW predicts the context from the centre word and skip-gram "
       "the reverse; trained on Wikipedia; one vector per word")
def _item_4(ev: Evidence) -> None:
    with ev.part("CBOW predicts the context from the centre word") as p:
        c = ev.claim("ch02.cbow_predicts_centre")
        p.figure("ch02.cbow_predicts_centre", c["text"])
        p.judge(FAILS if c["holds"] else HOLDS,
                "the loop matched to word2vec.c predicts the centre word from the mean of its "
                "context (once per centre); skip-gram predicts context words from the centre: "
                "the session swaps the two" if c["holds"] else
                "the course's CBOW check did not hold on this run")
    with ev.part("trained on Wikipedia") as p:
        p.judge(NOT_MEASURABLE, "no run can measure what corpus the released vectors used; "
                "the word2vec release (Mikolov et al. 2013) trained them on Google News")


@_item(5, "03", "GloVe (2014) factorises the co-occurrence matrix: the same regime as word2vec "
       "with a different objective")
def _item_5(ev: Evidence) -> None:
    with ev.part("GloVe factorises the (log) co-occurrence matrix") as p:
        c = ev.claim("ch03.glove_fits_log_counts")
        p.figure("ch03.glove_fits_log_counts", c["text"])
        p.judge(HOLDS if c["holds"] else FAILS,
                "w_i . w~_j + b_i + b~_j tracks log X_ij on the trained model")
    with ev.part("the same regime as word2vec") as p:
        g = p.figure("our GloVe, WordSim-353 Spearman", ev.record("ch03.glove_wordsim353"))
        w = p.figure("our word2vec, WordSim-353 Spearman", ev.record("ch03.w2v_wordsim353"))
        p.judge(HOLDS if abs(g - w) <= SAME_REGIME else FAILS,
                f"on the same corpus they differ by {_f(abs(g - w))} (same regime within "
                f"{SAME_REGIME})")


@_item(6, "04", "Sentence-BERT (2019) fine-tunes BERT as a siamese network on NLI and STS pairs, "
       "giving one vector per sentence")
def _item_6(ev: Evidence) -> None:
    with ev.part("one vector per sentence, from a siamese encoder") as p:
        c = ev.claim("ch04.siamese_one_vector", "04.siamese_one_vector")
        p.figure("siamese_one_vector", c["text"])
        p.judge(HOLDS if c["holds"] else FAILS, "a bi-encoder gives each text one vector, the "
                "same alone or in a padded batch")
    with ev.part("trained on NLI and STS pairs") as p:
        p.judge(NOT_MEASURABLE, "the offline data has no NLI or STS training set; Reimers and "
                "Gurevych (2019) describe the training")


@_item(7, "06", "SimCSE (2021) uses dropout as the augmentation, with no labelled pairs")
def _item_7(ev: Evidence) -> None:
    with ev.part("dropout alone teaches the encoder") as p:
        s = p.figure("SimCSE (dropout 0.1) Lee Spearman",
                     ev.record("ch06.simcse_dropout_0.1")["spearman"])
        s0 = p.figure("untrained start",
                      ev.record("ch06.tiny_transformer_untrained")["spearman"])
        nd = p.figure("SimCSE with dropout 0", ev.record("ch06.simcse_dropout_0")["spearman"])
        wins = [s - s0 >= SIMCSE_MARGIN, s - nd >= SIMCSE_MARGIN]
        p.judge(HOLDS if all(wins) else PARTLY if any(wins) else FAILS,
                f"unlabelled SimCSE gains {s - s0:+.3f} over its start and {s - nd:+.3f} over "
                f"the same training without dropout (each must reach {SIMCSE_MARGIN})")


@_item(8, "04", "modern embedders (2024 on) are instruction-tuned, multilingual and trained on "
       "hundreds of millions of pairs; the top of MTEB is near 70 mAP")
def _item_8(ev: Evidence) -> None:
    with ev.part("the MTEB average is a mAP") as p:
        c = ev.claim("ch04.mteb_average_is_not_map", "04.mteb_average_is_not_map")
        p.figure("mteb_average_is_not_map", c["text"])
        p.judge(FAILS if c["holds"] else HOLDS,
                "read from mteb's own task list: the average mixes nDCG@10, Spearman, accuracy "
                "and others; MAP is the main score of the re-ranking tasks only")
    with ev.part("modern embedders and the leaderboard's top") as p:
        p.judge(NOT_MEASURABLE, "no 2024 embedder runs offline here and the leaderboard is "
                "external; chapter 04 cites published MTEB figures with their sources")


# --- Contrastive learning -----------------------------------------------------------------------
@_item(9, "05", "InfoNCE with a temperature of about 0.05 to 0.1; a lower tau gives hard "
       "negatives more weight; the denominator sums over the negatives")
def _item_9(ev: Evidence) -> None:
    with ev.part("a lower tau gives hard negatives more weight") as p:
        share = p.figure("share of the push on the hardest negative, by tau",
                         ev.record("ch18.hardest_negative_share"))
        taus = sorted(share, key=float)
        falling = all(share[a] > share[b] for a, b in zip(taus, taus[1:], strict=False))
        p.judge(HOLDS if falling else FAILS, "the hardest negative's share of the gradient "
                + ("falls" if falling else "does not fall") + " at every step up in tau")
    with ev.part("tau of about 0.05 to 0.1 works best") as p:
        curve = p.figure("held-out recall@10 by tau", ev.record("ch05.recall10_by_temperature"))
        best = max(curve.values())
        inside = [v for t, v in curve.items() if 0.05 <= float(t) <= 0.1]
        if not inside:
            p.judge(NOT_RUN, "no temperature between 0.05 and 0.1 was trained")
        else:
            p.judge(HOLDS if best - max(inside) <= TAU_TOL else FAILS,
                    f"the best tau in [0.05, 0.1] reaches {_f(max(inside))} against "
                    f"{_f(best)} overall (within {TAU_TOL} counts)")
    with ev.part("the denominator sums over the negatives only") as p:
        d = p.figure("loss with the positive / negatives only",
                     ev.record("ch18.infonce_denominator"))
        ok = d["negatives_only"] < 0 <= d["with_positive"]
        p.judge(FAILS if ok else HOLDS,
                f"summed over the negatives only the loss is {_f(d['negatives_only'])}, below "
                f"zero, where InfoNCE's cross-entropy gives {_f(d['with_positive'])}: the usual "
                "form (van den Oord et al. 2018) includes the positive" if ok else
                "the two forms did not differ on this run")


@_item(10, "05", "in-batch negatives: a batch of 256 gives 255 free negatives per anchor")
def _item_10(ev: Evidence) -> None:
    with ev.part("255 negatives per anchor at batch 256") as p:
        r = p.figure("negatives that receive gradient, per anchor",
                     ev.record("ch18.in_batch_negatives"))
        ok = r["batch"] == 256 and r["negatives_per_anchor"] == r["batch"] - 1
        p.judge(HOLDS if ok else FAILS,
                f"every anchor of a batch of {r['batch']} gets gradient from "
                f"{r['negatives_per_anchor']} other positives, with no extra encoding")


@_item(11, "05", "hard negatives (BM25 misses, sibling categories, paraphrases of wrong "
       "answers) raise the margin and the quality")
def _item_11(ev: Evidence) -> None:
    with ev.part("hard negatives raise the margin") as p:
        m = p.figure("mean held-out margin", ev.record("modern.margin"))
        up = [m["bag hard"] > m["bag in-batch"], m["minilm hard"] > m["minilm in-batch"]]
        p.judge(HOLDS if all(up) else PARTLY if any(up) else FAILS,
                f"BM25 hard negatives move the margin {m['bag in-batch']:+.4f} -> "
                f"{m['bag hard']:+.4f} (GloVe bag) and {m['minilm in-batch']:+.4f} -> "
                f"{m['minilm hard']:+.4f} (MiniLM)")
    with ev.part("hard negatives raise the quality") as p:
        d = p.figure("nDCG@10, hard minus in-batch, paired bootstrap 95%",
                     ev.record("ch05.hard_vs_inbatch_ndcg10"))
        p.judge(HOLDS if d["lo"] > 0 else FAILS if d["hi"] < 0 or d["diff"] <= 0 else PARTLY,
                f"the gain is {d['diff']:+.3f} nDCG@10 [{d['lo']:+.3f}, {d['hi']:+.3f}]"
                + ("" if d["lo"] > 0 else ": not above the noise of these queries"))


# --- Metrics ------------------------------------------------------------------------------------
@_item(12, "07", "cosine for embeddings of varying magnitude; the dot product equals cosine on "
       "unit vectors; Euclidean when magnitude matters")
def _item_12(ev: Evidence) -> None:
    with ev.part("the dot product equals cosine on unit vectors") as p:
        err = p.figure("largest |dot - cos| on unit vectors", ev.record(
            "ch07.unit_identity_max_err"))
        p.judge(HOLDS if err < 1e-6 else FAILS, f"they agree to {err:.0e}")
    with ev.part("with varying magnitude the metric matters") as p:
        ov = p.figure("top-10 overlap of cosine and dot on raw GloVe",
                      ev.record("ch07.overlap_cos_dot_raw"))
        p.judge(HOLDS if ov < 0.9 else FAILS, f"on raw vectors the two share {_f(ov, 2)} of "
                "their top-10 lists")
    with ev.part("dot is popular thanks to FAISS") as p:
        p.judge(NOT_MEASURABLE, "popularity and its cause are not a measurement")


@_item(13, "07", "always L2-normalise, then use the dot product: it avoids two extra divisions "
       "per comparison")
def _item_13(ev: Evidence) -> None:
    with ev.part("normalising once is faster than cosine per comparison") as p:
        s = p.figure("speed-up of normalise-once + dot", ev.record("ch07.normalise_once_speedup"))
        p.judge(HOLDS if s > SPEED_MARGIN else FAILS,
                f"{_f(s, 1)}x (counts above {SPEED_MARGIN}x)")
    with ev.part("always normalise") as p:
        rho = p.figure("Spearman(frequency rank, norm), GloVe", ev.record(
            "ch07.spearman_rank_norm"))
        p.judge(FAILS if abs(rho) >= NORM_INFO else HOLDS,
                f"a word vector's norm tracks its frequency (Spearman {_f(rho, 2)}): normalising "
                "throws that signal away, which matters where magnitude carries meaning "
                "(popularity, MIPS)" if abs(rho) >= NORM_INFO else
                "norms carry little information here")


# --- Indexes ------------------------------------------------------------------------------------
@_item(14, "08", "a linear scan of 100 M vectors of 1024 dimensions is about 400 GB and takes "
       "seconds per query")
def _item_14(ev: Evidence) -> None:
    with ev.part("about 400 GB") as p:
        gb = p.figure("100 M x 1024 x 4 bytes, GB", 100e6 * 1024 * 4 / 1e9)
        p.judge(HOLDS if abs(gb / 400 - 1) <= 0.05 else FAILS, f"{_f(gb, 1)} GB of float32")
    with ev.part("seconds per query") as p:
        bw = p.figure("read bandwidth of one core, GB/s", ev.record("ch08.bandwidth_gb_s"))
        t = p.figure("seconds per query at that bandwidth",
                     ev.record("ch08.seconds_per_query_100m_1024d"))
        low, high = SECONDS
        p.judge(HOLDS if low <= t < high else PARTLY if high <= t < 10 * high else FAILS,
                f"one core reading {_f(bw, 1)} GB/s needs {_f(t, 1)} s a query (the bytes over "
                "the measured bandwidth); "
                + ("seconds indeed" if low <= t < high else
                   "seconds need the bandwidth of several cores" if t >= high else
                   "well under a second"))


@_item(15, "10", "HNSW: each node connects to log N neighbours; recall of 95 to 99% at "
       "sub-millisecond latency; memory about 2x the raw vectors; the default for most workloads")
def _item_15(ev: Evidence) -> None:
    with ev.part("each node connects to log N neighbours") as p:
        g = p.figure("layer-0 degree and layers as N grows", ev.record("ch10.degree_by_n"))
        n, deg = g["N"], g["mean_degree_l0"]
        grow_log = math.log(max(n)) / math.log(min(n)) - 1
        grow_deg = max(deg) / min(deg) - 1
        follows = grow_deg >= DEGREE_FOLLOWS_LOG * grow_log
        p.judge(HOLDS if follows else FAILS,
                f"from N = {min(n):,} to {max(n):,} log N grows {grow_log:.0%} and the mean "
                f"degree {grow_deg:.0%} (capped at 2M = {2 * g['M']}); "
                + (f"it is the number of layers that grows ({g['layers'][0]} -> "
                   f"{g['layers'][-1]})" if g["layers"][-1] > g["layers"][0] else
                   f"the layers, not the degree, carry the log N (expected top level "
                   f"ln N / ln M; {g['layers'][0]} layers at both sizes here)"))
    with ev.part("95 to 99% recall at sub-millisecond latency") as p:
        r = p.figure("first ef reaching recall@10 0.95, single query, one thread",
                     ev.record("ch10.latency_at_recall"))
        ok = r.get("recall") is not None and r["recall"] >= 0.95 and r["median_ms"] < 1.0
        p.judge(HOLDS if ok else FAILS,
                f"recall@10 {_f(r.get('recall'))} at {_f(r.get('median_ms'))} ms median on "
                f"{r.get('n', '?'):,} vectors" if r.get("recall") is not None else
                "no ef setting reached recall@10 0.95")
    with ev.part("memory about 2x the raw vectors") as p:
        c = p.figure("HNSW bytes / raw bytes by d and M", ev.record("ch10.memory_ratio_by_d"))
        dims = c["d"]
        lo, hi = HNSW_MEMORY
        r50, r1024 = c["M=16"][dims.index(50)], c["M=32"][dims.index(1024)]
        inside = [_between(r50, lo, hi), _between(r1024, lo, hi)]
        p.judge(HOLDS if all(inside) else PARTLY if any(inside) else FAILS,
                f"{_f(r50, 2)}x at 50-d with M=16, {_f(r1024, 2)}x at 1024-d with M=32: the links "
                "are a fixed cost, so the ratio falls as d grows")
    with ev.part("the default for most workloads") as p:
        p.judge(NOT_MEASURABLE, "what most workloads choose is not a measurement")


@_item(16, "11", "IVF: smaller than HNSW but slower or lower in recall; the saving is only the "
       "links")
def _item_16(ev: Evidence) -> None:
    with ev.part("IVF is smaller than HNSW") as p:
        r = ev.record("ch11.ivf_vs_hnsw")
        ivf, hnsw = r["ivf"], r["hnsw"]
        p.figure("bytes per vector (IVF, HNSW, raw)",
                 [ivf["bytes_per_vector"], hnsw["bytes_per_vector"], r["raw_bytes_per_vector"]])
        smaller = ivf["bytes_per_vector"] < hnsw["bytes_per_vector"]
        p.judge(HOLDS if smaller else FAILS,
                f"on {r['n']:,} {r['dataset']} vectors IVF holds {_f(ivf['bytes_per_vector'], 1)} "
                f"B per vector, HNSW {_f(hnsw['bytes_per_vector'], 1)}, the raw vectors "
                f"{_f(r['raw_bytes_per_vector'], 1)}")
    with ev.part("slower or lower in recall") as p:
        r = ev.record("ch11.ivf_vs_hnsw")
        ivf, hnsw = r["ivf"], r["hnsw"]
        p.figure(f"queries/s at recall@10 >= {r['recall_level']} (IVF, HNSW)",
                 [ivf["qps_at_level"], hnsw["qps_at_level"]])
        p.figure("best recall@10 (IVF, HNSW)", [ivf["best_recall"], hnsw["best_recall"]])
        lower = ivf["best_recall"] < hnsw["best_recall"] - 0.005
        if ivf["qps_at_level"] is None or hnsw["qps_at_level"] is None:
            slower = ivf["qps_at_level"] is None and hnsw["qps_at_level"] is not None
        else:
            slower = ivf["qps_at_level"] * SPEED_TIE < hnsw["qps_at_level"]
        p.judge(HOLDS if slower or lower else FAILS,
                f"at recall@10 {r['recall_level']} ({r['mode']} mode, {r['threads']} thread) IVF "
                f"runs {_f(ivf['qps_at_level'], 0)} queries/s, HNSW "
                f"{_f(hnsw['qps_at_level'], 0)}; best recall {_f(ivf['best_recall'])} against "
                f"{_f(hnsw['best_recall'])}")
    with ev.part("the saving is only the links") as p:
        r = ev.record("ch11.ivf_vs_hnsw")
        both_full = (r["ivf"]["bytes_per_vector"] >= r["raw_bytes_per_vector"]
                     and r["hnsw"]["bytes_per_vector"] >= r["raw_bytes_per_vector"])
        p.judge(HOLDS if both_full else FAILS, "both keep the full vectors; IVF adds an id and a "
                "share of the centroids, HNSW its links" if both_full else
                "one of them stores less than the raw vectors")


@_item(17, "09", "PQ: a 1024-d float32 vector (4096 B) becomes 128 B, 32x smaller and lossy; "
       "almost always combined as IVF+PQ at billion scale")
def _item_17(ev: Evidence) -> None:
    from embedlab.index.recommend import memory_bytes

    d, m, n = 1024, 128, 10**9
    with ev.part("4096 B become 128 B") as p:
        code = p.figure("PQ code bytes at m = 128, 8 bits",
                        memory_bytes("pq", n, d, m=m) // n)
        p.judge(HOLDS if code == 128 else FAILS, f"{code} B of codes per vector")
    with ev.part("32x smaller") as p:
        per = p.figure("IVF-PQ bytes per vector at 1B, ids and centroids counted",
                       memory_bytes("ivfpq", n, d, m=m) / n)
        ratio = p.figure("4096 B / bytes per vector", 4 * d / per)
        p.judge(HOLDS if abs(ratio / 32 - 1) <= PQ_RATIO_TOL else PARTLY,
                f"the codes alone are 32x smaller, but an index also stores each vector's "
                f"8-byte id: {_f(per, 1)} B per vector, {_f(ratio, 1)}x "
                "(embedlab.index.memory_bytes, which the tests check against the index's own "
                "byte count)")
    with ev.part("lossy") as p:
        r = p.figure("PQ (ADC) recall@10 on GloVe", ev.record("ch09.adc_recall10_glove"))
        p.judge(HOLDS if r < LOSSY else FAILS, f"the codes find {_f(r)} of the true top 10")
    with ev.part("almost always IVF+PQ at billion scale") as p:
        p.judge(NOT_MEASURABLE, "what deployments choose is not measured here")


@_item(18, "11", "ScaNN: the anisotropic loss plus asymmetric hashing give the best recall and "
       "throughput today; trickier to tune")
def _item_18(ev: Evidence) -> None:
    with ev.part("ScaNN is the fastest at a given recall") as p:
        r = ev.record("ch11.scann_best")
        best, scann, other = r["best"], r["scann"], r["best_other"]
        p.figure(f"fastest at recall@10 >= {r['level']}", best)
        p.figure("ScaNN's best there", scann)
        p.figure("fastest other library there", other)
        if scann is None:
            p.judge(FAILS, "ScaNN does not reach that recall on this run")
        elif other is None:
            p.judge(HOLDS, "only ScaNN reaches that recall")
        else:
            ratio = scann["qps"] / other["qps"]
            p.judge(HOLDS if ratio >= SPEED_TIE else FAILS if ratio < 1 / SPEED_TIE else PARTLY,
                    f"on {r['n']:,} {r['dataset']} vectors ({r['mode']} mode, {r['threads']} "
                    f"thread) ScaNN runs {ratio:.2f}x the queries/s of {other['library']} "
                    f"{other['index']} at recall@10 >= {r['level']} (a tie within {SPEED_TIE}x)")
    with ev.part("trickier to tune") as p:
        p.judge(NOT_MEASURABLE, "ease of tuning is not a measurement")


@_item(19, "11", "the index-choice table: < 1M -> HNSW or flat (< 5 ms, > 99%); 1-100M -> HNSW "
       "(< 50 ms, 95-98%, ~2x memory); 100M-1B -> IVF+PQ (< 100 ms, 90-95%, ~0.1x); > 1B -> "
       "ScaNN or sharded IVF+PQ (< 200 ms)")
def _item_19(ev: Evidence) -> None:
    # the session's targets per row: (latency ms, lowest recall, memory range over raw)
    targets = {"< 1M": (5.0, 0.99, None), "1M - 100M": (50.0, 0.95, HNSW_MEMORY),
               "100M - 1B": (100.0, 0.90, (0.0, 0.1)), "> 1B": (200.0, None, None)}
    with ev.part("each row's latency, recall and memory at the sizes measured, modelled up") as p:
        t = ev.record("ch11.index_choice_table")
        rows = {s: i for i, s in enumerate(t["scale"])}
        bad, good = [], []
        for scale, (lat, rec, mem) in targets.items():
            i = rows[scale]
            checks = {"latency": t["latency ms (model)"][i] <= lat}
            if rec is not None:
                checks["recall"] = t["best recall here"][i] >= rec
            if mem is not None:
                checks["memory"] = _between(t["memory / raw"][i], *mem)
            p.figure(scale, {"index": t["index"][i], "ms": t["latency ms (model)"][i],
                             "recall": t["best recall here"][i],
                             "memory/raw": t["memory / raw"][i]})
            for k, ok in checks.items():
                (good if ok else bad).append(f"{scale} {k}")
        p.judge(HOLDS if not bad else FAILS if not good else PARTLY,
                "latency from the model fed by measured throughput; recall measured at this "
                "run's size; memory from the calculator. Off target: "
                + (", ".join(bad) if bad else "none"))
    with ev.part("recommend(), fed measured recall, picks the table's index") as p:
        c = p.figure("recommend() at 1M, 10M, 1B with measured recall",
                     ev.record("ch18.index_choices"))
        want = {"1000000": ("flat", "hnsw"), "10000000": ("hnsw",), "1000000000": ("ivfpq",)}
        off = [f"{int(n):,} ({c[n]['index']}, not {' or '.join(ok)})" for n, ok in want.items()
               if c[n]["index"] not in ok]
        p.judge(HOLDS if not off else PARTLY if len(off) < len(want) else FAILS,
                "with the recall each index reached on this run's curves, recommend() picks "
                + ", ".join(f"{c[n]['index']} ({c[n]['shards']} machine(s)) at {int(n):,}"
                            for n in want)
                + ("" if not off else f"; the table says otherwise at {', '.join(off)}"))


# --- Vector databases ---------------------------------------------------------------------------
@_item(20, "12", "Pinecone managed and costly; Weaviate hybrid search; Qdrant fast with payload "
       "filtering; Milvus for billions; pgvector just Postgres, slower beyond 10 M; Vespa; FAISS "
       "a library, fastest in benchmarks, no persistence")
def _item_20(ev: Evidence) -> None:
    with ev.part("FAISS is the fastest") as p:
        e = ev.record("ch12.engines")
        p50 = p.figure("median query ms by engine", {k: v["p50_ms"] for k, v in e.items()})
        fastest = min(p50, key=p50.get)
        p.judge(HOLDS if fastest == "faiss" else FAILS,
                f"{fastest} answers fastest ({_f(p50[fastest], 2)} ms median) on the same "
                "workload")
    with ev.part("Qdrant filters on payload") as p:
        e = ev.record("ch12.engines")
        r = p.figure("Qdrant filtered recall@10 (1% of rows kept)",
                     e["qdrant"]["filtered_recall@0.01"])
        p.judge(HOLDS if r >= 0.9 else FAILS, f"filtered recall@10 {_f(r)}")
    with ev.part("pgvector is just Postgres: transactions and crash safety") as p:
        ok = [ev.claim("ch12.rollback")["holds"], ev.claim("ch12.sigkill")["holds"]]
        p.judge(HOLDS if all(ok) else FAILS, "a rolled-back transaction changes no result and "
                "a SIGKILL loses no committed row" if all(ok) else "a durability check failed")
    with ev.part("pgvector slower beyond 10 M") as p:
        s = ev.record("ch12.pgvector_scaling")
        p.figure("largest pgvector collection measured", max(s["N"]))
        p.judge(NOT_MEASURABLE, f"the course measures pgvector up to {max(s['N']):,} vectors; a "
                "10 M collection is beyond this machine's time budget")
    with ev.part("Pinecone, Weaviate, Milvus at billions, Vespa") as p:
        p.judge(NOT_MEASURABLE, "managed services, cost and operational effort are not "
                "measured by an offline run")


@_item(21, "12", "pgvector until you outgrow it; you almost never do")
def _item_21(ev: Evidence) -> None:
    with ev.part("pgvector serves the collections measured") as p:
        pg = ev.record("ch12.engines")["pgvector"]
        p.figure("pgvector recall@10, median ms", [pg["recall@10"], pg["p50_ms"]])
        ok = pg["recall@10"] >= 0.9 and pg["p50_ms"] < 50
        p.judge(HOLDS if ok else FAILS, f"recall@10 {_f(pg['recall@10'])} at "
                f"{_f(pg['p50_ms'], 2)} ms median (holds from 0.9 and under 50 ms)")
    with ev.part("you almost never outgrow it") as p:
        s = ev.record("ch12.pgvector_scaling")
        per_vector_mb = s["index_mb"][-1] / s["N"][-1]
        out = p.figure("vectors whose index fills 64 GB (linear model)", 64e3 / per_vector_mb)
        p.judge(NOT_MEASURABLE, "how large users' collections grow is not a measurement; by "
                f"the linear size model the index fills a 64 GB machine near {out:,.0f} vectors")


# --- Dimensionality and Matryoshka --------------------------------------------------------------
@_item(22, "13", "bigger is not better; sweet spots 768-1024 for general text, 384 for one "
       "language and domain, 1024+ for multimodal")
def _item_22(ev: Evidence) -> None:
    with ev.part("bigger is not better") as p:
        curve = p.figure("recall@10 by output size", ev.record("ch13.recall10_by_output_size"))
        knee = p.figure("smallest size within 0.01 of the best", ev.record("ch13.knee_dims"))
        biggest = max(int(k) for k in curve)
        p.judge(HOLDS if knee < biggest else FAILS,
                f"recall@10 stops improving from {knee} dims while sizes go up to {biggest}")
    with ev.part("the sweet spots") as p:
        p.judge(NOT_MEASURABLE, "no 768- or 1024-d text model or multimodal model runs offline "
                "here; chapter 13 cites published guidance")


@_item(23, "13", "Matryoshka: truncate a 3072-d vector 6x without retraining, store the prefix "
       "and re-rank with a longer one, with negligible quality loss")
def _item_23(ev: Evidence) -> None:
    with ev.part("6x truncation with negligible loss") as p:
        n = ev.record("ch13.minilm_ndcg10_by_dims")
        mrl = p.figure("Matryoshka-trained MiniLM nDCG@10, 384 -> 64 dims",
                       [n["fine-tuned, Matryoshka 384"], n["fine-tuned, Matryoshka 64"]])
        plain = p.figure("same fine-tuning without it, 384 -> 64 dims",
                         [n["fine-tuned, InfoNCE 384"], n["fine-tuned, InfoNCE 64"]])
        loss, loss_plain = mrl[0] - mrl[1], plain[0] - plain[1]
        p.figure("nDCG@10 lost (Matryoshka, plain)", [loss, loss_plain])
        p.judge(HOLDS if loss <= NEGLIGIBLE else PARTLY if loss < loss_plain else FAILS,
                f"cut 6x, the Matryoshka model loses {_f(loss)} nDCG@10 and the plain one "
                f"{_f(loss_plain)} (negligible up to {NEGLIGIBLE})")
    with ev.part("store the prefix, re-rank with a longer one") as p:
        f = p.figure("funnel recall@10 as a share of the full vectors'",
                     ev.record("ch13.funnel_of_full_recall10"))
        best = max(f.values())
        p.judge(HOLDS if best >= FUNNEL_RECOVERS else FAILS,
                f"the best funnel keeps {best:.1%} of the full recall@10 (recovered from "
                f"{FUNNEL_RECOVERS:.0%})")


# --- Failure modes ------------------------------------------------------------------------------
@_item(24, "14", "drift: a new embedder version makes every stored vector stale; re-embed "
       "everything, and plan for it")
def _item_24(ev: Evidence) -> None:
    with ev.part("a new version makes stored vectors stale") as p:
        v1 = p.figure("recall@10, v1 queries on v1", ev.record("ch14.recall10_v1"))
        x = p.figure("recall@10, new queries on old vectors", ev.record("ch14.recall10_drift"))
        p.judge(HOLDS if x < 0.5 * v1 else FAILS,
                f"mixing versions keeps {_f(x)} of {_f(v1)}")
    with ev.part("re-embedding with a plan keeps serving") as p:
        g = p.figure("worst window, served minus v1 recall", ev.record(
            "ch14.migration_min_window_gain"))
        p.judge(HOLDS if g >= 0 else FAILS, "through backfill, cutover and rollback no window "
                "served worse than v1" if g >= 0 else f"a window lost {_f(-g)} recall")


@_item(25, "14", "distribution mismatch: a model trained on one style loses recall on "
       "chat-style queries; use a domain-fine-tuned model")
def _item_25(ev: Evidence) -> None:
    with ev.part("mismatched queries lose recall") as p:
        d = p.figure("recall@10 lost on chatty questions", ev.record("ch14.mismatch_drop"))
        p.judge(HOLDS if d >= MISMATCH else FAILS, f"{_f(d)} lost (counts from {MISMATCH})")
    with ev.part("fine-tuning in the domain wins it back") as p:
        r = p.figure("recall@10 won back by fine-tuning", ev.record("ch14.mismatch_recovered"))
        p.judge(HOLDS if r > 0 else FAILS, f"{_f(r)} won back")


@_item(26, "14", "fp16 is fine for inference, fp32 for index storage, and mixing them can drop "
       "recall")
def _item_26(ev: Evidence) -> None:
    with ev.part("fp16 is fine for inference") as p:
        c = p.figure("lowest cosine of an fp16 query vector to its fp32 twin",
                     ev.record("ch14.fp16_min_cosine"))
        p.judge(HOLDS if c >= FP16_COSINE else FAILS, f"every fp16 vector within cosine {c:.6f}")
    with ev.part("fp32 for storage") as p:
        flips = p.figure("rank positions float16 scores flip in the top 10",
                         ev.record("ch07.fp16_rank_flips"))
        p.judge(HOLDS if flips > 0 else FAILS,
                f"float16 scores swap {flips} near-tied rank positions that float32 keeps")
    with ev.part("mixing precisions can drop recall") as p:
        m = p.figure("recall@10 by query / index precision", ev.record(
            "ch14.fp16_mixing_recall10"))
        base = m["fp32 queries, fp32 index"]
        n = m["n_queries"]
        se = math.sqrt(max(base * (1 - base), 1e-12) / n)
        drop = base - min(v for k, v in m.items() if k != "n_queries")
        p.judge(HOLDS if drop > 2 * se else FAILS,
                f"the largest drop is {_f(drop)} on {n} queries, against a standard error of "
                f"{_f(se)}: " + ("a real drop" if drop > 2 * se else
                                 "no drop beyond the noise, for one model in two precisions"))


@_item(27, "14", "the tokenisation gap: the embedder truncates at 512 tokens while documents run "
       "to 50 K; chunk before embedding")
def _item_27(ev: Evidence) -> None:
    with ev.part("the embedder truncates at 512 tokens") as p:
        limit = p.figure("MiniLM's max_seq_length (word pieces)", ev.record(
            "ch14.max_seq_length"))
        p.judge(HOLDS if limit == 512 else PARTLY,
                f"all-MiniLM-L6-v2 reads {limit} word pieces: the limit is the model's")
    with ev.part("chunk before embedding") as p:
        late = p.figure("recall@1, fact after the cut, whole document",
                        ev.record("ch14.truncation_recall1_late"))
        chunked = p.figure("recall@1, same documents chunked",
                           ev.record("ch14.truncation_recall1_chunked"))
        p.judge(HOLDS if chunked - late >= CHUNK_GAIN else FAILS,
                f"chunking lifts recall@1 from {_f(late)} to {_f(chunked)}")


# --- Beyond text --------------------------------------------------------------------------------
@_item(28, "15", "images (CLIP, SigLIP), recommendation (two towers), code and audio embedders "
       "use the same contrastive recipe: the recipe transfers, the data changes")
def _item_28(ev: Evidence) -> None:
    with ev.part("images and captions") as p:
        a = p.figure("zero-shot digit accuracy", ev.record("ch15.zero_shot_accuracy"))
        p.judge(HOLDS if a >= NN_TASK else FAILS, f"{_f(a)} (chance 0.1)")
    with ev.part("two-tower recommendation") as p:
        t = p.figure("recall@10: two towers + logQ, most popular",
                     [ev.record("ch15.recall10_logq"), ev.record("ch15.recall10_popular")])
        p.judge(HOLDS if t[0] > t[1] else FAILS, f"{_f(t[0])} against {_f(t[1])}")
    with ev.part("code") as p:
        c = p.figure("code search MRR@10 on held-out modules: fine-tuned MiniLM, BM25",
                     [ev.record("code.mrr10_finetuned"), ev.record("code.mrr10_bm25")])
        p.judge(HOLDS if c[0] > c[1] else FAILS,
                f"{_f(c[0])} against {_f(c[1])} for BM25 over identifiers")
    with ev.part("speech") as p:
        s = p.figure("speech -> text recall@1 on a held-out voice, chance",
                     [ev.record("audio.r1_heldout_voice"), ev.record("audio.chance")])
        p.judge(HOLDS if s[0] > 2 * s[1] else FAILS,
                f"{_f(s[0])} against chance {_f(s[1])}")


# --- The exercise and the checklist -------------------------------------------------------------
@_item(29, "17", "LeetCode 973, k closest points: a heap of size k keyed by negative distance, "
       "the same selection as an ANN scan")
def _item_29(ev: Evidence) -> None:
    with ev.part("a size-k heap returns the k closest") as p:
        h = p.figure("heap against sorting", ev.record("ch18.k_closest_heap"))
        near = (abs(h["replacements_k10"] - h["expected_replacements_k10"])
                <= 4 * h["sd_replacements_k10"])
        p.judge(HOLDS if h["agrees_with_sort"] and near else FAILS,
                f"equal to sorting for k in {h['ks']} on {h['n']:,} points; for k = 10 the root "
                f"is replaced {h['replacements_k10']:,} times, against k(H_n - H_k) = "
                f"{h['expected_replacements_k10']:,.1f} expected in random order")
    with ev.part("the same selection as an ANN scan") as p:
        c = ev.claim("ch17.heap_is_scan_selection")
        p.figure("ch17.heap_is_scan_selection", c["text"])
        p.judge(HOLDS if c["holds"] else FAILS, "the heap returns what faiss's flat scan returns")


@_item(30, "18", "by the end a learner can explain cosine = dot on unit vectors, InfoNCE and tau, "
       "pick an index at 1M, 10M and 1B, explain Matryoshka, plan a migration and solve k "
       "closest with a heap")
def _item_30(ev: Evidence) -> None:
    with ev.part("the checklist") as p:
        c = p.figure("checklist items demonstrated by chapter 18", ev.record("ch18.checklist"))
        shown = sum(bool(v) for v in c.values())
        p.judge(NOT_MEASURABLE, f"a run cannot measure what a learner can do; chapter 18 "
                f"demonstrates {shown} of {len(c)} items and its exercises grade each skill")


def ledger(records: dict[str, Any], claims_: dict[str, Any] | list[dict[str, Any]]
           ) -> list[dict[str, Any]]:
    """The 30 ledger rows computed from one run's records and claims.

    ``claims_``: ``{id: {"holds", "text"}}`` or a list of claim rows (``{"id", "holds",
    "text"}``). Each row: ``{"item", "chapter", "session", "verdict", "figures", "evidence",
    "missing", "reason", "parts"}``; ``figures`` maps a label to the measured value,
    ``evidence`` lists the record and claim ids read, ``missing`` those the row needed and this
    run did not record.
    """
    if isinstance(claims_, list):
        claims_ = {c["id"]: c for c in claims_}
    rows = []
    for number in sorted(_ITEMS):
        chapter, session, fn = _ITEMS[number]
        ev = Evidence(records, claims_)
        fn(ev)
        verdict = combine([p["verdict"] for p in ev.parts])
        figures = {k: v for p in ev.parts for k, v in p["figures"].items()}
        reason = "; ".join(f"{p['statement']}: {p['verdict']} ({p['reason']})"
                           for p in ev.parts)
        rows.append({"item": number, "chapter": chapter, "session": session,
                     "verdict": verdict, "figures": figures, "evidence": list(ev.read),
                     "missing": sorted(set(ev.missing)), "reason": reason,
                     "parts": ev.parts})
    return rows


def combine(verdicts: list[str]) -> str:
    """A row's verdict from its parts' (see the rules at the top of this section)."""
    if not verdicts:
        raise ValueError("verdicts: an item needs at least one part")
    if NOT_RUN in verdicts:
        return NOT_RUN
    measured = [v for v in verdicts if v != NOT_MEASURABLE]
    if not measured:
        return NOT_MEASURABLE
    if all(v == HOLDS for v in measured):
        return HOLDS
    if all(v == FAILS for v in measured):
        return FAILS
    return PARTLY


def course_results(report: str | Path | None = None, since: float | None = None
                   ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """Records, claims and notebook names of this course run, read from the records files.

    Under ``embedlab course`` each notebook writes ``NN_x.records.jsonl`` beside the others (the
    file ``EMBEDLAB_REPORT`` names) and ``EMBEDLAB_RUN_STARTED`` holds the run's start: files
    written before it belong to an earlier run and are skipped. The current process's records and
    claims are added last. Outside a course run only the current process's are known.
    """
    report = report or os.environ.get("EMBEDLAB_REPORT")
    if since is None and os.environ.get("EMBEDLAB_RUN_STARTED"):
        since = float(os.environ["EMBEDLAB_RUN_STARTED"])
    records: dict[str, Any] = {}
    found: dict[str, dict[str, Any]] = {}
    notebooks: list[str] = []
    if report:
        for path in sorted(Path(report).parent.glob("*.records.jsonl")):
            if since is not None and path.stat().st_mtime < since:
                continue
            notebooks.append(path.name.removesuffix(".records.jsonl"))
            records.update(read_records(path))
            for c in read_claims(path):
                found[c["id"]] = c
    records.update(recorded())
    for c in claims():
        found[c["id"]] = c
    return records, found, notebooks


def ledger_markdown(rows: list[dict[str, Any]]) -> str:
    """The ledger as a Markdown table: item, chapter, the statement, verdict, figures, evidence."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| # | chapter | the session said | verdict | figures and reason | evidence |",
             "|---:|---|---|---|---|---|"]
    for r in rows:
        evidence = ", ".join(f"`{i}`" for i in r["evidence"])
        if r["missing"]:
            evidence += ("; " if evidence else "") + "missing: " + ", ".join(
                f"`{i}`" for i in r["missing"])
        lines.append("| " + " | ".join([str(r["item"]), r["chapter"], cell(r["session"]),
                                         f"**{r['verdict']}**", cell(r["reason"]),
                                         evidence or "–"]) + " |")
    return "\n".join(lines)


def ledger_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows read each verdict, in the order of ``VERDICTS``."""
    return {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}


# Figures the ledger reads that no chapter records yet: id -> (chapter, what it holds). Until a
# chapter records one, the rows that need it read "not run". needs_markdown() renders this list.
NEEDED: dict[str, tuple[str, str]] = {
}


def needs_markdown() -> str:
    """``NEEDED`` as a Markdown list: each record the ledger reads that no chapter writes yet."""
    lines = ["# Records the ledger needs", "",
             "The ledger (`embedlab.report.ledger`, shown in chapter 18 and in "
             "`build/course/report.json`) reads each record below; until a chapter records it, "
             "the items that need it read **not run**. Record it in a `checks` cell with "
             "`record(id, value)`, exactly this id and shape.", ""]
    for rid, (chapter, what) in sorted(NEEDED.items(), key=lambda x: (x[1][0], x[0])):
        lines += [f"- **chapter {chapter}**, `{rid}`: {what}"]
    return "\n".join(lines) + "\n"
