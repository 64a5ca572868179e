"""Profiles: one place for every size the course uses.

A profile is a name, ``"ci"``, ``"standard"`` or ``"full"``:

* ``ci`` shrinks every size so a notebook runs in well under a minute (what the tests use);
* ``standard`` is what a learner gets in JupyterLab: a few minutes per notebook on a 2-core CPU;
* ``full`` reproduces the papers' regime as far as one machine allows.

Every notebook starts with a papermill ``parameters`` cell::

    profile = profile_from_env(default="standard")

and reads its sizes with ``sizes("17", profile)``. The environment variable
``EMBEDLAB_PROFILE`` overrides the default; papermill may inject ``profile = "ci"`` instead.
"""

from __future__ import annotations

import os
from typing import Any

PROFILES = ("ci", "standard", "full")

# One entry per chapter: {"ci": {...}, "standard": {...}, "full": {...}}.
# Every profile of a chapter must define the same keys (a test checks this).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "00": {
        "ci": {"demo_points": 1_000},
        "standard": {"demo_points": 100_000},
        "full": {"demo_points": 1_000_000},
    },
    "01": {
        # analogy_every: answer every k-th question of each Google section (1 = all 19,544);
        # parity_every: the same for the (slower) gensim comparison;
        # n_headlines: news headlines embedded with MiniLM for the sentence-level search.
        "ci": {"restrict_vocab": 30_000, "analogy_every": 8, "parity_every": 32,
               "n_headlines": 48},
        "standard": {"restrict_vocab": 30_000, "analogy_every": 1, "parity_every": 8,
                     "n_headlines": 1_000},
        "full": {"restrict_vocab": 30_000, "analogy_every": 1, "parity_every": 1,
                 "n_headlines": 3_824},
    },
    "02": {
        "ci": {"n_articles": 200, "vector_size": 32, "epochs": 3, "inline_sentences": 150,
               "sweep_articles": 120,
               "sweep_epochs": 2, "sweep": {"sample": [0.0, 1e-3], "window": [2, 5],
                                            "negative": [2, 5], "vector_size": [16, 32]}},
        "standard": {"n_articles": None, "vector_size": 100, "epochs": 3,
                     "inline_sentences": 300, "sweep_articles": None, "sweep_epochs": 2,
                     "sweep": {"sample": [0.0, 1e-4, 1e-3], "window": [2, 5, 10],
                               "negative": [2, 5, 15], "vector_size": [25, 50, 100]}},
        "full": {"n_articles": None, "vector_size": 100, "epochs": 5, "inline_sentences": 1000,
                 "sweep_articles": None, "sweep_epochs": 3,
                 "sweep": {"sample": [0.0, 1e-5, 1e-4, 1e-3], "window": [2, 5, 10, 15],
                           "negative": [2, 5, 10, 20], "vector_size": [25, 50, 100, 200]}},
    },
    "03": {
        "ci": {"n_articles": 200, "vector_size": 32, "window": 10, "epochs": 10, "x_max": 10.0,
               "w2v_epochs": 3, "demo_articles": 20},
        "standard": {"n_articles": None, "vector_size": 50, "window": 10, "epochs": 15,
                     "x_max": 10.0, "w2v_epochs": 3, "demo_articles": 100},
        "full": {"n_articles": None, "vector_size": 100, "window": 10, "epochs": 50,
                 "x_max": 10.0, "w2v_epochs": 5, "demo_articles": 300},
    },
    "04": {
        # n_eval: held-out news pairs scored (of 800); max_chars: articles cut to this length;
        # steps/batch_size: the quick bi-encoder trained at the end (bag of GloVe embeddings)
        "ci": {"n_eval": 100, "max_chars": 500, "steps": 30, "batch_size": 32, "max_len": 64},
        "standard": {"n_eval": 800, "max_chars": 1000, "steps": 200, "batch_size": 64,
                     "max_len": 128},
        "full": {"n_eval": 800, "max_chars": None, "steps": 1000, "batch_size": 128,
                 "max_len": 256},
    },
    "05": {
        # n_train: training pairs used (None = all ~2,900); steps per run of every sweep;
        # ft_*: MiniLM fine-tuning (pairs, batch, learning rate, article cut in characters and
        # word pieces, top layers trained, held-out pairs scored); lee_docs: how many of Lee's 50
        # documents the instruction study scores (None = all)
        "ci": {"n_eval": 200, "max_chars": 500, "n_train": 1000, "max_len": 64, "steps": 30,
               "batch_size": 32, "batch_sizes": [16, 64], "temperatures": [0.05, 1.0],
               "n_negatives": 1, "margin": 0.1, "lr": 0.03, "ft_pairs": 32, "ft_batch": 8,
               "ft_lr": 1e-4, "ft_chars": 120, "ft_len": 32, "ft_layers": 3, "ft_eval": 32,
               "lee_docs": 20},
        "standard": {"n_eval": 800, "max_chars": 1000, "n_train": None, "max_len": 128,
                     "steps": 150, "batch_size": 64, "batch_sizes": [16, 32, 64, 256],
                     "temperatures": [0.01, 0.05, 0.1, 1.0], "n_negatives": 1, "margin": 0.1,
                     "lr": 0.03, "ft_pairs": 640, "ft_batch": 32, "ft_lr": 1e-4,
                     "ft_chars": 200, "ft_len": 48, "ft_layers": 3, "ft_eval": 800,
                     "lee_docs": None},
        "full": {"n_eval": 800, "max_chars": None, "n_train": None, "max_len": 256,
                 "steps": 600, "batch_size": 64, "batch_sizes": [16, 32, 64, 128, 256, 512],
                 "temperatures": [0.01, 0.02, 0.05, 0.1, 0.2, 1.0], "n_negatives": 3,
                 "margin": 0.1, "lr": 0.03, "ft_pairs": None, "ft_batch": 32, "ft_lr": 5e-5,
                 "ft_chars": 500, "ft_len": 128, "ft_layers": None, "ft_eval": 800,
                 "lee_docs": None},
    },
    "06": {
        # SimCSE: n_sentences news sentences, steps per run; sup_steps: supervised pairs after
        "ci": {"n_eval": 100, "max_chars": 500, "n_sentences": 2000, "sent_len": 32,
               "max_len": 64, "steps": 30, "batch_size": 32, "temperatures": [0.05, 0.5],
               "eval_every": 15, "sup_steps": 20, "bag_steps": 30, "lr": 1e-3},
        "standard": {"n_eval": 800, "max_chars": 1000, "n_sentences": 20000, "sent_len": 32,
                     "max_len": 128, "steps": 120, "batch_size": 64,
                     "temperatures": [0.01, 0.05, 0.5], "eval_every": 20, "sup_steps": 60,
                     "bag_steps": 150, "lr": 1e-3},
        "full": {"n_eval": 800, "max_chars": None, "n_sentences": 60000, "sent_len": 48,
                 "max_len": 256, "steps": 2000, "batch_size": 128,
                 "temperatures": [0.001, 0.01, 0.05, 0.1, 1.0], "eval_every": 100,
                 "sup_steps": 1000, "bag_steps": 600, "lr": 1e-3},
    },
    "07": {
        # n_vectors: GloVe rows searched; n_queries: query words; loop_n: rows scored in the
        # pure-Python loop; timing_repeats: best-of for the illustrative timings; speed_rounds:
        # interleaved rounds of the normalise-once comparison.
        # timing_texts: headlines timed for MiniLM's cost per pass; ce_*: the cross-encoder
        # (training headlines mined, the hardest of them trained on, article cut in characters,
        # MiniLM-mined negatives per headline (plus one from BM25), batch, learning rate, word
        # pieces per pair); rerank_queries x rerank_k: the shortlists it re-ranks (chapter 04's
        # held-out split)
        "ci": {"n_vectors": 20_000, "n_queries": 20, "loop_n": 2_000, "timing_repeats": 2,
               "speed_rounds": 5, "timing_texts": 64, "ce_pool": 32, "ce_hard": 8,
               "ce_chars": 200, "ce_negs": 1, "ce_batch": 8, "ce_lr": 5e-5, "ce_len": 64,
               "rerank_queries": 10, "rerank_k": 10},
        "standard": {"n_vectors": 400_000, "n_queries": 50, "loop_n": 10_000,
                     "timing_repeats": 2, "speed_rounds": 7, "timing_texts": 256,
                     "ce_pool": 400, "ce_hard": 160, "ce_chars": 200, "ce_negs": 2,
                     "ce_batch": 16, "ce_lr": 5e-5, "ce_len": 64, "rerank_queries": 100,
                     "rerank_k": 10},
        "full": {"n_vectors": 400_000, "n_queries": 200, "loop_n": 50_000, "timing_repeats": 5,
                 "speed_rounds": 9, "timing_texts": 1000, "ce_pool": 2000, "ce_hard": 800,
                 "ce_chars": 500, "ce_negs": 3, "ce_batch": 16, "ce_lr": 5e-5, "ce_len": 160,
                 "rerank_queries": 800, "rerank_k": 20},
    },
    "08": {
        # glove_base/minilm_base/n_query: the two datasets; flat_sizes: base sizes of the
        # single-query timing (the first one sets the L3 buffer); timing_queries x rounds: the
        # queries and interleaved rounds of every timing (benchmarks/ use 1,000 x 15);
        # kmeans_*: the k-means study; nlist/nprobes: the IVF sweep
        "ci": {"glove_base": 64_000, "minilm_base": 3_000, "n_query": 200,
               "flat_sizes": [16_000, 32_000, 64_000], "timing_queries": 100, "rounds": 3,
               "kmeans_points": 5_000, "kmeans_k": 64, "kmeans_iters": 10, "nlist": 64,
               "nprobes": [1, 2, 4, 8, 16, 64]},
        "standard": {"glove_base": 200_000, "minilm_base": 19_000, "n_query": 1_000,
                     "flat_sizes": [25_000, 50_000, 100_000, 200_000], "timing_queries": 300,
                     "rounds": 5, "kmeans_points": 50_000, "kmeans_k": 256, "kmeans_iters": 20,
                     "nlist": 512, "nprobes": [1, 2, 4, 8, 16, 32, 64, 128]},
        "full": {"glove_base": 399_000, "minilm_base": 85_000, "n_query": 1_000,
                 "flat_sizes": [50_000, 100_000, 200_000, 399_000], "timing_queries": 1_000,
                 "rounds": 15, "kmeans_points": 100_000, "kmeans_k": 1024, "kmeans_iters": 20,
                 "nlist": 1024, "nprobes": [1, 2, 4, 8, 16, 32, 64, 128, 256]},
    },
    "09": {
        # n_train: training vectors for every PQ (ours and faiss's alike); n_train_sweep: for
        # the sweep over m (ms_glove); m_minilm: sub-quantisers for 384-d; adc_queries: queries
        # of the inline (numpy) ADC; timing_queries x rounds: every timing (interleaved)
        "ci": {"glove_base": 20_000, "minilm_base": 3_000, "n_query": 200, "n_train": 5_000,
               "n_train_sweep": 5_000, "pq_niter": 10, "ms_glove": [2, 5, 10],
               "m_minilm": 48, "nlist": 64, "nprobes": [1, 4, 16, 64], "adc_queries": 50,
               "timing_queries": 100, "rounds": 3},
        "standard": {"glove_base": 100_000, "minilm_base": 19_000, "n_query": 1_000,
                     "n_train": 20_000, "n_train_sweep": 10_000, "pq_niter": 15,
                     "ms_glove": [1, 2, 5, 10, 25], "m_minilm": 24, "nlist": 512,
                     "nprobes": [1, 4, 16, 64, 256], "adc_queries": 100,
                     "timing_queries": 200, "rounds": 5},
        "full": {"glove_base": 399_000, "minilm_base": 85_000, "n_query": 1_000,
                 "n_train": 65_536, "n_train_sweep": 65_536, "pq_niter": 25,
                 "ms_glove": [1, 2, 5, 10, 25, 50], "m_minilm": 48, "nlist": 1024,
                 "nprobes": [1, 4, 16, 64, 256], "adc_queries": 1_000, "timing_queries": 1_000,
                 "rounds": 15},
    },
    "10": {
        # nsw_points: 2-D points of the drawn graph; stack_points: the 2-D HNSW of the layer
        # picture; n_base/n_query: GloVe slice for the index; python_queries: queries the plain
        # Python search answers (the parity check); ns: base sizes of the log N study (built with
        # growth_efc); sweep_Ms/sweep_efcs: one build each at the other's default; news_base:
        # MiniLM-news base for the peer table (used when "minilm-news" is in datasets);
        # timing_queries x rounds: every timing (interleaved rounds)
        "ci": {"nsw_points": 300, "stack_points": 400, "n_base": 4_000, "n_query": 200,
               "python_queries": 20, "M": 16, "ef_construction": 100,
               "efs": [10, 20, 40, 80, 160], "ns": [1_000, 2_000, 4_000, 8_000],
               "growth_efc": 40, "sweep_Ms": [8, 16], "sweep_efcs": [40, 100],
               "datasets": ["glove"], "news_base": 2_000, "timing_queries": 100, "rounds": 3},
        "standard": {"nsw_points": 600, "stack_points": 600, "n_base": 30_000, "n_query": 500,
                     "python_queries": 50, "M": 16, "ef_construction": 100,
                     "efs": [10, 20, 40, 80, 160, 320], "ns": [10_000, 40_000, 160_000],
                     "growth_efc": 32, "sweep_Ms": [8, 16, 32], "sweep_efcs": [40, 100],
                     "datasets": ["glove", "minilm-news"], "news_base": 10_000,
                     "timing_queries": 300, "rounds": 5},
        "full": {"nsw_points": 1_000, "stack_points": 1_000, "n_base": 399_000, "n_query": 1_000,
                 "python_queries": 200, "M": 16, "ef_construction": 200,
                 "efs": [10, 20, 40, 80, 160, 320, 640], "ns": [10_000, 40_000, 160_000, 399_000],
                 "growth_efc": 100, "sweep_Ms": [8, 16, 32, 48], "sweep_efcs": [50, 100, 200, 400],
                 "datasets": ["glove", "minilm-news"], "news_base": 80_000,
                 "timing_queries": 1_000, "rounds": 15},
    },
    "11": {
        # n_base/n_query: GloVe slice for every index; t_base: base for the threshold sweep;
        # m/nbits: PQ code (the same for plain and anisotropic); nlist/nprobes, efs: IVF and
        # HNSW settings of the all-index sweep; mc_queries: Monte Carlo queries of the eta check;
        # news_base/news_m: MiniLM-news base and its PQ m (when "minilm-news" is in datasets);
        # rounds: interleaved timing rounds; timing_queries: queries of the 4-bit scan timings;
        # inline_points: rows of the inline codebook-step check; level: the recall at which
        # the comparison's speeds are read.
        "ci": {"n_base": 3_000, "n_query": 200, "t_base": 2_000, "m": 25, "nbits": 4,
               "aniso_iter": 3, "Ts": [0.0, 0.1, 0.2, 0.3], "nlist": 32,
               "nprobes": [1, 2, 4, 8, 16], "M": 16, "ef_construction": 64,
               "efs": [10, 20, 40, 80], "mc_queries": 200_000, "n_shards": 4,
               "datasets": ["glove"], "news_base": 2_000, "news_m": 48, "rounds": 3,
               "timing_queries": 200, "level": 0.9, "inline_points": 3_000},
        "standard": {"n_base": 40_000, "n_query": 1_000, "t_base": 6_000, "m": 25, "nbits": 4,
                     "aniso_iter": 5, "Ts": [0.0, 0.1, 0.2, 0.3, 0.4], "nlist": 256,
                     "nprobes": [1, 2, 4, 8, 16, 32, 64], "M": 16, "ef_construction": 100,
                     "efs": [10, 20, 40, 80, 160, 320], "mc_queries": 1_000_000, "n_shards": 4,
                     "datasets": ["glove", "minilm-news"], "news_base": 15_000, "news_m": 48,
                     "rounds": 3, "timing_queries": 300, "level": 0.9, "inline_points": 10_000},
        "full": {"n_base": 399_000, "n_query": 1_000, "t_base": 50_000, "m": 25, "nbits": 4,
                 "aniso_iter": 8, "Ts": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "nlist": 1_024,
                 "nprobes": [1, 2, 4, 8, 16, 32, 64, 128], "M": 16, "ef_construction": 200,
                 "efs": [10, 20, 40, 80, 160, 320, 640], "mc_queries": 4_000_000,
                 "n_shards": 8, "datasets": ["glove", "minilm-news"], "news_base": 80_000,
                 "news_m": 48, "rounds": 15, "timing_queries": 1_000, "level": 0.9,
                 "inline_points": 20_000},
    },
    "12": {
        # n_base/n_query: MiniLM news sentences (payload: source, date, article) and held-out
        # queries, the one workload of every engine; n_latency: single-query latencies per
        # engine; k_big: the k of the "k real ids" check; selectivities: shares of rows a filter
        # keeps (the filtered-search table); post_depth: the unfiltered HNSW top list a
        # post-filter keeps from; n_trap: queries of that table (n_slow for Qdrant's Python
        # filter); milvus_efs: the ef values of Milvus Lite's filtered walk; reranks: shortlists
        # the binary index re-ranks with float32; crash_batch: rows per transaction of the crash
        # tests; pg_ns: base sizes whose buffer pages per query feed the latency model;
        # n_eval/max_chars/fusion_depth: the held-out articles of hybrid search and how deep each
        # list goes into the fusion.
        "ci": {"n_base": 2_000, "n_query": 50, "n_latency": 20, "k_big": 100,
               "selectivities": [0.01, 0.1, 0.5], "post_depth": 40, "n_trap": 30, "n_slow": 3,
               "milvus_efs": [64, 256, 1024], "reranks": [10, 40], "crash_batch": 1_000,
               "pg_ns": [500, 1_000, 2_000], "n_eval": 100, "max_chars": 500,
               "fusion_depth": 100},
        "standard": {"n_base": 10_000, "n_query": 200, "n_latency": 50, "k_big": 100,
                     "selectivities": [0.01, 0.1, 0.5], "post_depth": 40, "n_trap": 50,
                     "n_slow": 5, "milvus_efs": [64, 256, 1024], "reranks": [10, 40, 100],
                     "crash_batch": 2_000, "pg_ns": [2_500, 5_000, 10_000], "n_eval": 800,
                     "max_chars": 1000, "fusion_depth": 100},
        "full": {"n_base": 80_000, "n_query": 500, "n_latency": 300, "k_big": 100,
                 "selectivities": [0.001, 0.01, 0.1, 0.5], "post_depth": 40, "n_trap": 500,
                 "n_slow": 20, "milvus_efs": [64, 256, 1024, 4096],
                 "reranks": [10, 40, 100, 400], "crash_batch": 5_000,
                 "pg_ns": [10_000, 20_000, 40_000, 80_000], "n_eval": 800, "max_chars": None,
                 "fusion_depth": 200},
    },
    "13": {
        # the chapter-05 bag-of-GloVe encoder, its table lifted to each output size in `sizes`;
        # mrl_dims: the nested sizes of the Matryoshka run (the largest is its full size);
        # n_base: news sentences searched in the funnel timing; shortlists: funnel widths;
        # random_dims: dimensions of the Gaussian data in the distance-concentration plot;
        # minilm_dims: the prefixes MiniLM is fine-tuned for with the Matryoshka loss (on chapter
        # 05's fine-tuning data and settings, so chapter 05's plain run is reused).
        "ci": {"n_train": 1000, "n_eval": 100, "max_chars": 500, "max_len": 64, "steps": 25,
               "batch_size": 32, "lr": 0.03, "temperature": 0.05, "max_words": 20_000,
               "top_glove": 5_000, "sizes": [16, 64, 256], "mrl_dims": [16, 32, 64, 128],
               "n_base": 3_000, "shortlists": [20, 50, 100], "random_dims": [2, 8, 32, 128, 512],
               "timing_repeats": 2, "minilm_dims": [384, 192, 96, 64, 48]},
        "standard": {"n_train": None, "n_eval": 800, "max_chars": 1000, "max_len": 128,
                     "steps": 200, "batch_size": 64, "lr": 0.03, "temperature": 0.05,
                     "max_words": 30_000, "top_glove": 20_000,
                     "sizes": [16, 32, 64, 128, 256], "mrl_dims": [16, 32, 64, 128],
                     "n_base": 20_000, "shortlists": [20, 50, 100, 200],
                     "random_dims": [2, 8, 32, 128, 512, 2048], "timing_repeats": 3,
                     "minilm_dims": [384, 192, 96, 64, 48]},
        "full": {"n_train": None, "n_eval": 800, "max_chars": None, "max_len": 256,
                 "steps": 600, "batch_size": 64, "lr": 0.03, "temperature": 0.05,
                 "max_words": 30_000, "top_glove": 20_000,
                 "sizes": [16, 32, 64, 128, 256, 512], "mrl_dims": [16, 32, 64, 128, 256],
                 "n_base": 80_000, "shortlists": [20, 50, 100, 200, 400],
                 "random_dims": [2, 8, 32, 128, 512, 2048, 8192], "timing_repeats": 5,
                 "minilm_dims": [384, 192, 96, 64, 48]},
    },
    "14": {
        # news task (n_eval held-out pairs, articles cut to max_chars); v1 = bag of GloVe with a
        # 64-d head trained `steps` on n_train pairs, v1b the same retrained with another seed,
        # v2 = MiniLM; ft_steps: in-domain fine-tuning on chatty queries; n_ticks: queries in the
        # migration stream; n_glove/n_glove_queries: GloVe base of the storage study; rescores:
        # re-scoring shortlists; n_long: long documents of the truncation study; n_fp16: headlines
        # embedded by MiniLM in float16.
        "ci": {"n_eval": 100, "max_chars": 500, "n_train": 1_000, "max_len": 64, "steps": 30,
               "batch_size": 32, "lr": 0.03, "ft_steps": 40, "n_ticks": 600, "start_at": 100,
               "backfill_batch": 4, "window": 50, "n_glove": 10_000, "n_glove_queries": 200,
               "rescores": [20, 200], "n_long": 10, "filler_words": 260,
               "snippet_words": 50, "chunk_size": 128, "chunk_overlap": 32, "n_fp16": 40},
        "standard": {"n_eval": 800, "max_chars": 1_000, "n_train": None, "max_len": 128,
                     "steps": 150, "batch_size": 64, "lr": 0.03, "ft_steps": 150,
                     "n_ticks": 3_000, "start_at": 300, "backfill_batch": 8, "window": 100,
                     "n_glove": 200_000, "n_glove_queries": 500, "rescores": [20, 50, 200],
                     "n_long": 80, "filler_words": 300, "snippet_words": 60,
                     "chunk_size": 128, "chunk_overlap": 32, "n_fp16": 200},
        "full": {"n_eval": 800, "max_chars": None, "n_train": None, "max_len": 256,
                 "steps": 600, "batch_size": 64, "lr": 0.03, "ft_steps": 400, "n_ticks": 10_000,
                 "start_at": 1_000, "backfill_batch": 16, "window": 200, "n_glove": 399_000,
                 "n_glove_queries": 1_000, "rescores": [20, 50, 200, 1_000], "n_long": 400,
                 "filler_words": 400, "snippet_words": 60, "chunk_size": 128,
                 "chunk_overlap": 32, "n_fp16": 800},
    },
    "15": {
        # clip_*: the digits two-tower (n_train images, the rest held out); rec_*: synthetic
        # users x items, interactions per user, towers' size and training of the recommender.
        "ci": {"n_train": 1_200, "clip_steps": 120, "clip_batch": 64, "clip_dim": 32,
               "clip_temperature": 0.1, "n_users": 400, "n_items": 200, "per_user": 40,
               "rec_dim": 16, "rec_steps": 300, "rec_batch": 256, "rec_temperature": 0.1},
        "standard": {"n_train": 1_200, "clip_steps": 400, "clip_batch": 64, "clip_dim": 32,
                     "clip_temperature": 0.1, "n_users": 2_000, "n_items": 1_000,
                     "per_user": 50, "rec_dim": 32, "rec_steps": 1_500, "rec_batch": 256,
                     "rec_temperature": 0.1},
        "full": {"n_train": 1_200, "clip_steps": 1_500, "clip_batch": 128, "clip_dim": 64,
                 "clip_temperature": 0.1, "n_users": 5_000, "n_items": 2_000, "per_user": 100,
                 "rec_dim": 32, "rec_steps": 4_000, "rec_batch": 512, "rec_temperature": 0.1},
    },
    "16": {
        # code: every_file reads every k-th file of the standard library (1 = all); test_fraction
        # of the pairs held out, by module; MiniLM fine-tuned on ft_pairs training pairs (None =
        # all) with documents cut to ft_len word pieces, the top ft_layers trained for ft_epochs;
        # rrf_k of reciprocal rank fusion; n_boot bootstrap resamples of every interval.
        # speech: n_words training words and n_test_words held-out words, n_voices training
        # voices, per_voice clips of each word by each voice at rates and pitches drawn from the
        # ranges, white noise at train_snr (a range, dB) in training and test_snr in the tests;
        # the towers (audio_dim, audio_width) trained audio_steps steps of audio_batch words at
        # audio_lr; map_words held-out words in the 2-D map; sweep: numbers of training voices,
        # each trained sweep_steps steps.
        "ci": {"every_file": 8, "test_fraction": 0.3, "ft_len": 32, "ft_layers": 1,
               "ft_pairs": 48, "ft_epochs": 1, "ft_batch": 16, "ft_lr": 1e-4, "rrf_k": 60,
               "n_boot": 500, "n_words": 40, "n_test_words": 12, "n_voices": 8, "per_voice": 1,
               "rates": [130, 220], "pitches": [30, 70], "train_snr": [0, 20], "test_snr": 10,
               "audio_dim": 32, "audio_width": 16, "audio_steps": 60, "audio_batch": 16,
               "audio_lr": 3e-3, "map_words": 4, "sweep": [1, 2, 4, 8], "sweep_steps": 20},
        "standard": {"every_file": 1, "test_fraction": 0.15, "ft_len": 64, "ft_layers": 2,
                     "ft_pairs": 1200, "ft_epochs": 2, "ft_batch": 32, "ft_lr": 2e-4,
                     "rrf_k": 60, "n_boot": 2000, "n_words": 1500, "n_test_words": 250,
                     "n_voices": 8, "per_voice": 1, "rates": [130, 220], "pitches": [30, 70],
                     "train_snr": [0, 20], "test_snr": 10, "audio_dim": 128, "audio_width": 64,
                     "audio_steps": 1000, "audio_batch": 256, "audio_lr": 2e-3, "map_words": 8,
                     "sweep": [1, 2, 4, 8], "sweep_steps": 250},
        "full": {"every_file": 1, "test_fraction": 0.15, "ft_len": 128, "ft_layers": 2,
                 "ft_pairs": None, "ft_epochs": 2, "ft_batch": 32, "ft_lr": 2e-4, "rrf_k": 60,
                 "n_boot": 5000, "n_words": 2000, "n_test_words": 500, "n_voices": 8,
                 "per_voice": 2, "rates": [120, 240], "pitches": [25, 75], "train_snr": [0, 20],
                 "test_snr": 10, "audio_dim": 128, "audio_width": 128, "audio_steps": 2000,
                 "audio_batch": 256, "audio_lr": 2e-3, "map_words": 10, "sweep": [1, 2, 4, 8],
                 "sweep_steps": 800},
    },
    "17": {
        "ci": {"n_points": 20_000, "ns": [1_000, 4_000, 16_000], "ks": [1, 10, 100],
               "timing_repeats": 2},
        "standard": {"n_points": 1_000_000, "ns": [10_000, 100_000, 1_000_000],
                     "ks": [1, 10, 100, 1_000], "timing_repeats": 5},
        "full": {"n_points": 10_000_000, "ns": [10_000, 100_000, 1_000_000, 10_000_000],
                 "ks": [1, 10, 100, 1_000, 10_000], "timing_repeats": 7},
    },
    "18": {
        # n_points/dim: random vectors of the cosine and heap checks; ann_base/ann_queries: the
        # GloVe sample whose recall curves feed recommend() (nlist lists, pq_m sub-quantisers of
        # 8 bits, HNSW with M links, swept over nprobes and efs); n_eval/max_chars: the news
        # pairs of the truncation check (MiniLM, cached); mrl_dims: prefixes checked;
        # grade: the exercise notebooks graded at the end ("all" = every chapter's).
        "ci": {"n_points": 2_000, "dim": 64, "ann_base": 2_000, "ann_queries": 100,
               "nlist": 32, "pq_m": 10, "M": 16, "nprobes": [1, 2, 4, 8, 16, 32],
               "efs": [10, 20, 40, 80, 160], "n_eval": 200, "max_chars": 500,
               "mrl_dims": [384, 192, 96, 48, 24], "grade": ["18"]},
        "standard": {"n_points": 100_000, "dim": 384, "ann_base": 10_000, "ann_queries": 200,
                     "nlist": 64, "pq_m": 10, "M": 16, "nprobes": [1, 2, 4, 8, 16, 32, 64],
                     "efs": [10, 20, 40, 80, 160], "n_eval": 800, "max_chars": 1_000,
                     "mrl_dims": [384, 192, 96, 48, 24], "grade": ["14", "15", "17", "18"]},
        "full": {"n_points": 1_000_000, "dim": 384, "ann_base": 50_000, "ann_queries": 500,
                 "nlist": 128, "pq_m": 10, "M": 16, "nprobes": [1, 2, 4, 8, 16, 32, 64, 128],
                 "efs": [10, 20, 40, 80, 160, 320], "n_eval": 800, "max_chars": None,
                 "mrl_dims": [384, 256, 192, 128, 96, 64, 48, 24], "grade": "all"},
    },
    "19": {
        # n_sentences: news sentences embedded on the Dask cluster, in partitions of
        # partition_size; n_queries: the following sentences, as queries; overhead_tasks and
        # payload_mb: the round-trip study; nlist/m/nbits/nprobe: the IVF-PQ shards;
        # latency_queries: single queries timed through the scatter-gather.
        # model_vectors: the grown local shard whose query time gives the per-vector slope.
        "ci": {"n_sentences": 64, "partition_size": 16, "batch_size": 16, "n_queries": 16,
               "overhead_tasks": 10, "payload_mb": 8, "nlist": 8, "m": 16, "nbits": 6,
               "nprobe": 2, "k": 10, "latency_queries": 10, "model_vectors": 20_000},
        "standard": {"n_sentences": 600, "partition_size": 50, "batch_size": 32,
                     "n_queries": 100, "overhead_tasks": 30, "payload_mb": 32, "nlist": 32,
                     "m": 16, "nbits": 8, "nprobe": 8, "k": 10, "latency_queries": 50,
                     "model_vectors": 100_000},
        "full": {"n_sentences": 20_000, "partition_size": 500, "batch_size": 64,
                 "n_queries": 1_000, "overhead_tasks": 50, "payload_mb": 64, "nlist": 128,
                 "m": 16, "nbits": 8, "nprobe": 16, "k": 10, "latency_queries": 200,
                 "model_vectors": 1_000_000},
    },
    "20": {
        # the budget: max_bytes_per_vector (index bytes per document, ids excluded), max_p99_ms
        # (single-query latency in thread CPU time on one thread; the query embedder's own time
        # is shown apart unless encoder_in_latency), max_build_s (notebook start to built index,
        # empty data cache: CPU seconds over build_threads threads). The task: n_corpus articles
        # (None = every article with a text), n_dev public and n_sealed sealed queries, k
        # results per query (recall@k); timeout_s/memory_gb: the scorer's child process;
        # max_chars: articles cut for the MiniLM baselines; shortlists/weights: the re-ranking
        # settings the solution compares on the development split.
        "ci": {"max_bytes_per_vector": 64, "max_p99_ms": 5.0, "max_build_s": 60,
               "encoder_in_latency": False, "n_corpus": 300, "n_dev": 60, "n_sealed": 40,
               "k": 100, "timeout_s": 240, "memory_gb": 8, "build_threads": 2,
               "max_chars": 300, "shortlists": [10, 30], "weights": [1.0, 2.0]},
        "standard": {"max_bytes_per_vector": 64, "max_p99_ms": 5.0, "max_build_s": 180,
                     "encoder_in_latency": False, "n_corpus": None, "n_dev": 800,
                     "n_sealed": 400, "k": 100, "timeout_s": 900, "memory_gb": 8,
                     "build_threads": 2, "max_chars": 500, "shortlists": [10, 20, 30, 50],
                     "weights": [0.5, 1.0, 2.0, 3.0]},
        "full": {"max_bytes_per_vector": 64, "max_p99_ms": 5.0, "max_build_s": 180,
                 "encoder_in_latency": False, "n_corpus": None, "n_dev": 800, "n_sealed": 400,
                 "k": 100, "timeout_s": 900, "memory_gb": 8, "build_threads": 2,
                 "max_chars": 500, "shortlists": [10, 20, 30, 50, 100],
                 "weights": [0.5, 1.0, 2.0, 3.0, 4.0]},
    },
}


def check_profile(name: str) -> str:
    """Return ``name`` if it is a known profile, else raise a ``ValueError`` that lists them."""
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {name!r}")
    return name


def profile_from_env(default: str = "standard") -> str:
    """The active profile: ``$EMBEDLAB_PROFILE`` if set, else ``default``."""
    return check_profile(os.environ.get("EMBEDLAB_PROFILE", default) or default)


def sizes(chapter: str, profile: str) -> dict[str, Any]:
    """The sizes chapter ``chapter`` (e.g. ``"08"``) uses in ``profile``, as a fresh dict."""
    check_profile(profile)
    if chapter not in SIZES:
        raise ValueError(f"no sizes for chapter {chapter!r}; known: {sorted(SIZES)}")
    return dict(SIZES[chapter][profile])
