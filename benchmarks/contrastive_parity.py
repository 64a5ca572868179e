"""info_nce against sentence-transformers' MultipleNegativesRankingLoss, then the chapters'
task table (chapters 04-06) with the bars of issue 5.

    python benchmarks/contrastive_parity.py [--profile ci|standard|full] [--no-tasks]

Part 1 prints, for several batch shapes, the loss of both implementations on the same float64
embeddings, the largest gradient difference, and the time ratio (forward + backward) measured in
this run. Part 2 trains the chapters' encoders with the profile's sizes and prints every model
on both tasks, then whether each bar holds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from embedlab import contrastive as C
from embedlab import encoders as E
from embedlab import tasks
from embedlab.profiles import profile_from_env, sizes


def _mnrl(tau: float, symmetric: bool):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    kw = {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}
    return MultipleNegativesRankingLoss(model=None, scale=1 / tau, **(kw if symmetric else {}))


def _time(fn, repeats: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _case(a, p, n, tau: float, sym: bool) -> tuple[float, float, float, float, float]:
    """(loss ours, loss theirs, |loss diff|, max |grad diff|, time ratio ours / theirs)."""
    inputs = [t for t in (a, p, n) if t is not None]
    cols = [a, p] + ([n[:, k] for k in range(n.shape[1])] if n is not None else [])
    ref_loss = _mnrl(tau, sym)

    def ours():
        return C.info_nce(a, p, n, temperature=tau, symmetric=sym)

    def theirs():
        return ref_loss.compute_loss_from_embeddings(cols, None)

    lo, lt = ours(), theirs()
    go, gt = torch.autograd.grad(lo, inputs), torch.autograd.grad(lt, inputs)
    dl = abs(lo.item() - lt.item())
    dg = max(float((x - y).abs().max()) for x, y in zip(go, gt, strict=True))
    t_o = _time(lambda: torch.autograd.grad(ours(), inputs))
    t_t = _time(lambda: torch.autograd.grad(theirs(), inputs))
    return lo.item(), lt.item(), dl, dg, t_o / t_t


def parity() -> float:
    print("== info_nce vs MultipleNegativesRankingLoss (float64, same embeddings)")
    print(f"{'B':>5} {'d':>4} {'neg':>4} {'sym':>5} {'tau':>5} {'loss (ours)':>13} "
          f"{'loss (ST)':>13} {'|dloss|':>9} {'max|dgrad|':>10} {'time ours/ST':>13}")
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    for b, d, m, sym, tau in [(32, 64, 0, False, 0.05), (128, 384, 0, False, 0.05),
                              (64, 128, 3, False, 0.05), (256, 384, 1, False, 0.02),
                              (64, 128, 0, True, 0.1), (64, 128, 2, True, 0.05)]:
        a = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
        p = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
        n = (torch.randn(b, m, d, generator=g, dtype=torch.float64, requires_grad=True)
             if m else None)
        lo, lt, dl, dg, ratio = _case(a, p, n, tau, sym)
        worst = max(worst, dl, dg)
        print(f"{b:>5} {d:>4} {m:>4} {str(sym):>5} {tau:>5} {lo:>13.8f} {lt:>13.8f}"
              f" {dl:>9.1e} {dg:>10.1e} {ratio:>13.2f}")
    print(f"largest difference: {worst:.1e} (bar: < 1e-6) -> {'PASS' if worst < 1e-6 else 'FAIL'}")
    return worst


def task_table(profile: str) -> None:
    s5, s6 = sizes("05", profile), sizes("06", profile)
    device = E.default_device()
    print(f"\n== chapters 04-06 on both tasks (profile {profile}, device {device})")
    train, _ = tasks.news_split()
    queries = train.title.tolist()
    docs = [tasks.truncate_text(t, s5["max_chars"]) for t in train.text]
    vocab, vectors, counts = E.glove_vocabulary(queries + train.text.tolist())
    sif = E.sif_weights(counts)

    def ev(enc_fn):
        return tasks.evaluate(enc_fn, n=s5["n_eval"], max_chars=s5["max_chars"])

    def bag(**kw):
        return E.BagOfEmbeddings(vocab, vectors, max_len=s5["max_len"], **kw)

    rows = {"GloVe average": ev(bag().encode),
            "GloVe SIF-weighted": ev(bag(pooling="weighted", token_weights=sif).encode)}
    pos = np.arange(len(queries))
    bm25 = C.bm25_scores(queries, docs)
    for name, neg in [("bag, in-batch", None),
                      ("bag, + BM25 negatives", C.mine_hard_negatives(
                          bm25, pos, s5["n_negatives"], margin=s5["margin"], relative=True))]:
        enc = bag(pooling="weighted", token_weights=sif)
        C.train_pairs(enc, queries, docs, steps=s5["steps"], batch_size=s5["batch_size"],
                      temperature=0.05, lr=s5["lr"], hard_negatives=neg, device=device,
                      progress=False)
        rows[name] = ev(enc.encode)
        if neg is None:
            model_scores = enc.encode(queries) @ enc.encode(docs).T
    enc = bag(pooling="weighted", token_weights=sif)
    C.train_pairs(enc, queries, docs, steps=s5["steps"], batch_size=s5["batch_size"],
                  temperature=0.05, lr=s5["lr"], device=device, progress=False,
                  hard_negatives=C.mine_hard_negatives(model_scores, pos, s5["n_negatives"],
                                                       margin=s5["margin"], relative=True))
    rows["bag, + model negatives"] = ev(enc.encode)

    from embedlab.text import split_sentences, tokenize

    sents = [x for t in train.text for x in split_sentences(t)
             if 8 <= len(tokenize(x)) <= s6["sent_len"]]
    rng = np.random.default_rng(0)
    sents = [sents[i] for i in sorted(rng.choice(len(sents), min(s6["n_sentences"], len(sents)),
                                                 replace=False))]

    def tt(dropout=0.1):
        return E.TinyTransformer(vocab, vectors, dropout=dropout, max_len=s6["max_len"], seed=0)

    rows["transformer, untrained"] = ev(tt().encode)
    for name, kw, same in [("SimCSE dropout 0.1", {}, False), ("SimCSE dropout 0", {"dropout": 0.0},
                                                               False),
                           ("SimCSE same mask", {}, True)]:
        enc = tt(**kw)
        C.train_simcse(enc, sents, steps=s6["steps"], batch_size=s6["batch_size"],
                       temperature=0.05, lr=s6["lr"], same_mask=same, device=device,
                       progress=False)
        rows[name] = ev(enc.encode)
    rows["all-MiniLM-L6-v2"] = ev(lambda t: E.embed_cached(list(t), show_progress_bar=False))

    cols = ["recall@1", "recall@10", "mrr", "spearman"]
    print(f"{'model':<26}" + "".join(f"{c:>11}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<26}" + "".join(f"{r[c]:>11.3f}" for c in cols))
    simcse = rows["SimCSE dropout 0.1"]
    print("\nbars:")
    for other in ["transformer, untrained", "SimCSE dropout 0"]:
        for metric in ["recall@10", "spearman"]:
            ok = simcse[metric] > rows[other][metric]
            print(f"  SimCSE beats {other:<24} on {metric:<9}: {simcse[metric]:.3f} vs "
                  f"{rows[other][metric]:.3f} -> {'PASS' if ok else 'FAIL'}")
    base = rows["bag, in-batch"]["recall@10"]
    for name in ["bag, + BM25 negatives", "bag, + model negatives"]:
        r10 = rows[name]["recall@10"]
        print(f"  {name} beats in-batch on recall@10 at equal steps: {r10:.3f} vs {base:.3f} -> "
              f"{'PASS' if r10 > base else 'FAIL'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=profile_from_env(default="standard"))
    ap.add_argument("--no-tasks", action="store_true", help="only the parity table")
    args = ap.parse_args()
    torch.manual_seed(0)
    parity()
    if not args.no_tasks:
        task_table(args.profile)


if __name__ == "__main__":
    main()
