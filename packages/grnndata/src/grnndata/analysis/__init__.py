"""Analysis of gene networks (rows = regulators, columns = targets).

- :mod:`.graph`: centralities (degree, strengths, PageRank, eigenvector) and communities, on
  sparse matrices without densifying;
- :mod:`.enrichment`: GMT gene sets, hypergeometric and preranked (Mann-Whitney) enrichment with
  Benjamini-Hochberg FDR;
- :mod:`.combine`: comparing (edge overlap / Jaccard) and merging networks by gene name.
"""

from .combine import compare, merge
from .enrichment import (
    benjamini_hochberg,
    hypergeometric_enrichment,
    preranked_enrichment,
    read_gmt,
)
from .graph import CENTRALITIES, centrality, communities

__all__ = [
    "CENTRALITIES",
    "benjamini_hochberg",
    "centrality",
    "communities",
    "compare",
    "hypergeometric_enrichment",
    "merge",
    "preranked_enrichment",
    "read_gmt",
]
