"""Our word2vec (skip-gram and CBOW) and GloVe against gensim and pretrained GloVe 6B 50d.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/word2vec_vs_gensim.py [--epochs 3]

Same corpus (the news articles, tokenised with embedlab.text), same hyper-parameters, one
thread each (gensim ``workers=1``). Prints one table: training wall time, WordSim-353 and
SimLex-999 Spearman, Google analogy accuracy (3CosAdd, vocabulary restricted to the 30,000 most
frequent words as gensim does), and for each of our word2vec models the three bars of the issue:

* WordSim-353 Spearman ratio ours / gensim  >= 0.9
* analogy accuracy delta ours - gensim      >= -3 points
* wall-time ratio ours / gensim             <= 3

Training times are the median (and min-max) of ``--runs`` (3) interleaved runs of each side.
Our GloVe and the pretrained GloVe 6B 50d (about 3,000x more text) are reported next to them.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from embedlab import data  # noqa: E402
from embedlab.evaluation import analogy_accuracy, similarity_spearman  # noqa: E402
from embedlab.glove import GloVe  # noqa: E402
from embedlab.report import record  # noqa: E402
from embedlab.text import news_sentences  # noqa: E402
from embedlab.word2vec import Word2Vec  # noqa: E402


def evaluate(vectors: np.ndarray, words: list[str], ws, sl, questions) -> dict[str, float]:
    return {
        "ws353": similarity_spearman(vectors, words, ws),
        "simlex": similarity_spearman(vectors, words, sl),
        "analogy": analogy_accuracy(vectors, words, questions, restrict_vocab=30000)["total"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=None, help="first N news articles (all)")
    ap.add_argument("--vector-size", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negative", type=int, default=5)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--glove-epochs", type=int, default=10)
    ap.add_argument("--glove-window", type=int, default=10)
    ap.add_argument("--glove-x-max", type=float, default=10.0,
                    help="GloVe's x_max: 100 in the paper (billions of tokens), 10 in glove.c's "
                         "small-corpus demo; 10 suits 2M tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3, help="interleaved timing runs (median)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    from gensim.models import Word2Vec as GensimW2V

    sentences = news_sentences(args.articles)
    n_tokens = sum(map(len, sentences))
    ws, sl = data.load("wordsim353"), data.load("simlex999")
    questions = data.load("analogy-google")
    hp = dict(vector_size=args.vector_size, window=args.window, negative=args.negative,
              sample=args.sample, min_count=args.min_count, epochs=args.epochs,
              alpha=0.025, min_alpha=1e-4, seed=args.seed)
    print(f"corpus: news, {len(sentences):,} sentences, {n_tokens:,} tokens; "
          f"d={args.vector_size} window={args.window} negative={args.negative} "
          f"sample={args.sample:g} min_count={args.min_count} epochs={args.epochs} "
          f"alpha=0.025->1e-4; one thread each; GloVe d={args.vector_size} "
          f"window={args.glove_window} epochs={args.glove_epochs} x_max={args.glove_x_max:g} "
          "alpha=0.75")
    Word2Vec(vector_size=8, min_count=1, epochs=1).fit(sentences[:20])  # load the numba cache
    GloVe(vector_size=8, min_count=1, epochs=1).fit(sentences[:20])

    rows: dict[str, dict[str, float]] = {}
    spread: dict[str, tuple[float, float]] = {}
    for sg in (1, 0):
        name = "skip-gram" if sg else "CBOW"
        times: dict[str, list[float]] = {"ours": [], "gensim": []}
        for run in range(args.runs):  # interleaved: ours, gensim, ours, gensim, ...
            t = time.perf_counter()
            ours = Word2Vec(sg=bool(sg), **hp).fit(sentences)
            times["ours"].append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs = GensimW2V(sentences, sg=sg, hs=0, workers=1, cbow_mean=1, **hp)
            times["gensim"].append(time.perf_counter() - t)
            if run == 0:  # quality from the first run (seeded, so every run is the same model)
                q_ours = evaluate(ours.vectors, ours.index_to_key, ws, sl, questions)
                q_theirs = evaluate(theirs.wv.vectors, theirs.wv.index_to_key, ws, sl,
                                    questions)
        for lib, q in (("ours", q_ours), ("gensim", q_theirs)):
            rows[f"{lib} {name}"] = {"time": float(np.median(times[lib])), **q}
            spread[f"{lib} {name}"] = (min(times[lib]), max(times[lib]))
        print(f"  trained {name} {args.runs}x each, interleaved: ours "
              + "/".join(f"{t:.1f}" for t in times["ours"]) + " s, gensim "
              + "/".join(f"{t:.1f}" for t in times["gensim"]) + " s", flush=True)
    t = time.perf_counter()
    glove = GloVe(vector_size=args.vector_size, window=args.glove_window,
                  epochs=args.glove_epochs, x_max=args.glove_x_max, min_count=args.min_count,
                  seed=args.seed)
    glove.fit(sentences)
    rows["ours GloVe"] = {"time": time.perf_counter() - t,
                          **evaluate(glove.vectors, glove.index_to_key, ws, sl, questions)}
    gv, gw = data.load("glove-6b-50d")
    rows["GloVe 6B 50d (pretrained)"] = {"time": float("nan"), **evaluate(gv, gw, ws, sl,
                                                                           questions)}

    print()
    print(f"training time: median of {args.runs} interleaved runs (min-max), one thread each")
    print(f"{'model':<28}{'train s':>9}{'min-max':>13}{'WS353 rho':>11}{'SimLex rho':>12}"
          f"{'analogy %':>11}")
    print("-" * 84)
    for name, r in rows.items():
        tt = "-" if np.isnan(r["time"]) else f"{r['time']:.1f}"
        lo, hi = spread.get(name, (float("nan"), float("nan")))
        mm = "-" if np.isnan(lo) else f"{lo:.1f}-{hi:.1f}"
        print(f"{name:<28}{tt:>9}{mm:>13}{r['ws353']:>11.3f}{r['simlex']:>12.3f}"
              f"{100 * r['analogy']:>11.1f}")
    print()
    print(f"{'ours vs gensim':<16}{'WS353 ratio':>13}{'(>=0.9)':>9}{'analogy d pts':>15}"
          f"{'(>=-3)':>8}{'time ratio':>12}{'(<=3)':>7}")
    print("-" * 80)
    all_ok = True
    for name in ("skip-gram", "CBOW"):
        o, g = rows[f"ours {name}"], rows[f"gensim {name}"]
        ratio = o["ws353"] / g["ws353"]
        delta = 100 * (o["analogy"] - g["analogy"])
        tr = o["time"] / g["time"]
        ok = (ratio >= 0.9, delta >= -3.0, tr <= 3.0)
        all_ok &= all(ok)
        marks = ["ok" if x else "MISS" for x in ok]
        print(f"{name:<16}{ratio:>13.3f}{marks[0]:>9}{delta:>+15.1f}{marks[1]:>8}"
              f"{tr:>12.2f}{marks[2]:>7}")
        key = "sg" if name == "skip-gram" else "cbow"
        record(f"ch02.bench_{key}_ws353_ratio", round(ratio, 4))
        record(f"ch02.bench_{key}_analogy_delta_pts", round(delta, 2))
        record(f"ch02.bench_{key}_time_ratio", round(tr, 3))
    record("ch03.bench_glove_ws353", round(rows["ours GloVe"]["ws353"], 4))
    record("ch03.bench_glove6b_ws353", round(rows["GloVe 6B 50d (pretrained)"]["ws353"], 4))
    print()
    print("all bars met" if all_ok else "some bar missed (see MISS above)")


if __name__ == "__main__":
    main()
