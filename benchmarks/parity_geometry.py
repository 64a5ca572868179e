"""Parity of embedlab.evaluation with gensim on GloVe 6B 50d, printed as a table.

* analogy accuracy (Google set, 3CosAdd, first 30,000 words) vs
  ``KeyedVectors.evaluate_word_analogies``: bar, within 0.5 points (total and each section);
* WordSim-353 and SimLex-999 Spearman vs ``KeyedVectors.evaluate_word_pairs`` over the whole
  vocabulary: bar, within 0.01.

Wall times of both sides, measured in this run, are printed too. Exit status 1 when a bar fails.

    .venv/bin/python benchmarks/parity_geometry.py [--restrict-vocab 30000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from embedlab import data  # noqa: E402
from embedlab.evaluation import analogy_results, similarity_spearman  # noqa: E402

ANALOGY_BAR = 0.5  # percentage points
SPEARMAN_BAR = 0.01
PAIR_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restrict-vocab", type=int, default=30_000)
    args = ap.parse_args(argv)
    logging.getLogger("gensim").setLevel(logging.WARNING)
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    vectors, words = data.load("glove-6b-50d")
    questions = data.load("analogy-google")
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)

    rows: list[tuple[str, float, float, str]] = []  # name, ours, gensim, bar

    t0 = time.perf_counter()
    ours = analogy_results(vectors, words, questions, restrict_vocab=args.restrict_vocab)
    t_ours = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "questions-words.txt")
        lines = []
        for section, qs in questions.items():
            lines.append(f": {section}")
            lines.extend(" ".join(q) for q in qs)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        score, sections = kv.evaluate_word_analogies(str(path),
                                                     restrict_vocab=args.restrict_vocab)
        t_gensim = time.perf_counter() - t0
    theirs = {s["section"]: s for s in sections}

    def gensim_acc(names: list[str]) -> float:
        c = sum(len(theirs[n]["correct"]) for n in names)
        n = c + sum(len(theirs[n]["incorrect"]) for n in names)
        return c / n if n else 0.0

    acc = ours.as_dict()
    sem = [s for s in questions if not s.startswith("gram")]
    syn = [s for s in questions if s.startswith("gram")]
    bar = f"<= {ANALOGY_BAR} pt"
    rows.append(("analogy total (%)", 100 * acc["total"], 100 * score, bar))
    rows.append(("analogy semantic (%)", 100 * acc["semantic"], 100 * gensim_acc(sem), bar))
    rows.append(("analogy syntactic (%)", 100 * acc["syntactic"], 100 * gensim_acc(syn),
                 bar))
    for s in questions:
        rows.append((f"  {s} (%)", 100 * acc["per_section"][s], 100 * gensim_acc([s]), bar))

    times = [("analogy_accuracy", t_ours, t_gensim)]
    for name, filename in PAIR_FILES.items():
        pairs = data.load(name)
        t0 = time.perf_counter()
        rho = similarity_spearman(vectors, words, pairs)
        t_o = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, sp, _ = kv.evaluate_word_pairs(datapath(filename), restrict_vocab=len(words))
        t_g = time.perf_counter() - t0
        rows.append((f"{name} Spearman", rho, float(sp.statistic), f"<= {SPEARMAN_BAR}"))
        times.append((f"similarity_spearman {name}", t_o, t_g))

    failed = []
    print(f"GloVe 6B 50d, {len(words):,} words; analogies restricted to the first "
          f"{args.restrict_vocab:,}\n")
    print(f"{'measure':<40} {'embedlab':>10} {'gensim':>10} {'|diff|':>9}  {'bar':<10} ok")
    print("-" * 88)
    for name, o, g, bar_text in rows:
        diff = abs(o - g)
        limit = ANALOGY_BAR if "(%)" in name else SPEARMAN_BAR
        ok = diff <= limit
        if not ok:
            failed.append(name)
        print(f"{name:<40} {o:>10.4f} {g:>10.4f} {diff:>9.4f}  {bar_text:<10} "
              f"{'yes' if ok else 'NO'}")
    print(f"\nquestions answered: {sum(ours.answered.values()):,}, skipped (out of vocabulary): "
          f"{sum(ours.skipped.values()):,}")
    print(f"\n{'wall time (s)':<40} {'embedlab':>10} {'gensim':>10} {'ratio':>9}")
    print("-" * 72)
    for name, t_o, t_g in times:
        print(f"{name:<40} {t_o:>10.3f} {t_g:>10.3f} {t_g / t_o:>8.1f}x")
    if failed:
        print(f"\nFAILED bars: {', '.join(failed)}")
        return 1
    print("\nall parity bars hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
