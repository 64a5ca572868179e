"""embedlab: the companion package of a course on embeddings, contrastive learning and search.

One module per idea; each is the single source of truth for the algorithm its chapter builds.
"""

__version__ = "0.1.0"
