"""Approximate nearest-neighbour indexes built from scratch, with faiss's conventions.

``FlatIndex`` (exact), ``IVFIndex`` (inverted file), ``PQIndex`` (product quantisation) and
``IVFPQIndex`` (inverted file over PQ-coded residuals) share one interface, defined in
``embedlab.index.base``: ``train``, ``add``, ``search(q, k)``, ``nbytes``, ``save``/``load``.
``kmeans`` is the clustering that IVF and PQ train with.
"""

from embedlab.index.base import METRICS, Index
from embedlab.index.flat import FlatIndex
from embedlab.index.ivf import IVFIndex
from embedlab.index.ivfpq import IVFPQIndex
from embedlab.index.kmeans import KMeansResult, kmeans
from embedlab.index.pq import PQIndex

__all__ = ["METRICS", "FlatIndex", "IVFIndex", "IVFPQIndex", "Index", "KMeansResult", "PQIndex",
           "kmeans"]

# chapters 10 and 11: graph search, and choosing an index
from embedlab.index.anisotropic import AnisotropicPQIndex  # noqa: E402
from embedlab.index.hnsw import HNSWIndex  # noqa: E402
from embedlab.index.recommend import memory_bytes, recommend  # noqa: E402
from embedlab.index.shards import ShardedIndex  # noqa: E402

__all__ += ["AnisotropicPQIndex", "HNSWIndex", "ShardedIndex", "memory_bytes", "recommend"]
