"""Gene-set enrichment from local GMT files: hypergeometric (gene list) and preranked (ranking).

Nothing is fetched from the web: gene sets come from a GMT file (:func:`read_gmt`) or a dict.
Both tests are analytic and deterministic; p-values are adjusted with Benjamini-Hochberg.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._matrix import examples

log = logging.getLogger(__name__)

__all__ = ["benjamini_hochberg", "hypergeometric_enrichment", "preranked_enrichment", "read_gmt"]


def read_gmt(
    path: str | os.PathLike,
    duplicate_names: Literal["rename", "merge", "error"] = "rename",
) -> dict[str, list[str]]:
    """Read a GMT file: one set per line, ``name <TAB> description <TAB> gene <TAB> gene ...``.

    Genes repeated within a set are kept once (first-occurrence order); blank lines are skipped.
    A line with fewer than two fields raises ``ValueError`` naming the line.

    ``duplicate_names`` says what to do when several lines share a set name (real files do this,
    e.g. one "Mast cells" set per tissue): ``"rename"`` (default) keys every such set as
    ``"name (description)"`` and, if that still repeats, adds ``" #2"``, ``" #3"`` ... in file
    order; ``"merge"`` takes the union of their genes under the plain name; ``"error"`` raises.
    """
    if duplicate_names not in ("rename", "merge", "error"):
        raise ValueError(
            f"duplicate_names={duplicate_names!r}; expected 'rename', 'merge' or 'error'"
        )
    entries: list[tuple[str, str, list[str]]] = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(
                f"{path}:{number}: a GMT line needs 'name<TAB>description<TAB>genes...', "
                f"got {line[:80]!r}"
            )
        genes = [g.strip() for g in fields[2:] if g.strip()]
        entries.append((fields[0].strip(), fields[1].strip(), genes))
    counts = pd.Series([name for name, _, _ in entries]).value_counts()
    repeated = set(counts.index[counts > 1])
    if repeated and duplicate_names == "error":
        raise ValueError(
            f"{path}: {len(repeated)} set name(s) appear on several lines, e.g. "
            f"{examples(sorted(repeated))}; use duplicate_names='rename' or 'merge'"
        )
    sets: dict[str, list[str]] = {}
    for name, description, genes in entries:
        key = name
        if name in repeated and duplicate_names == "rename":
            key = f"{name} ({description})"
            suffix = 2
            while key in sets:
                key = f"{name} ({description}) #{suffix}"
                suffix += 1
        sets[key] = list(dict.fromkeys([*sets.get(key, []), *genes]))
    return sets


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (monotone, capped at 1), same order as the input.

    Delegates to :func:`scipy.stats.false_discovery_control` (``method="bh"``) after checking
    that every p-value is a number in ``[0, 1]``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    bad = (p < 0) | (p > 1) | ~np.isfinite(p)
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1], e.g. got {examples(p[bad])}")
    return stats.false_discovery_control(p, method="bh")


def _unique_names(values: Sequence[str], what: str) -> pd.Index:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of gene names, not a single string {values!r}")
    return pd.Index([str(v) for v in values], dtype=object).unique()


def hypergeometric_enrichment(
    genes: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]],
    universe: Sequence[str],
    *,
    min_overlap: int = 0,
) -> pd.DataFrame:
    """Over-representation of ``genes`` in each gene set (one-sided hypergeometric test).

    Everything is restricted to ``universe`` (e.g. the network's genes): query genes and set
    members outside it are ignored (the count is logged). For a set of ``K`` universe genes, a
    query of ``n`` universe genes, ``N`` universe genes and an overlap of ``k``,
    ``pvalue = P[X >= k]`` for ``X ~ Hypergeom(N, K, n)``, and
    ``odds_ratio = k (N - K - n + k) / ((K - k)(n - k))`` (``inf`` when the denominator is 0).

    Returns
    -------
    DataFrame with columns ``set, overlap, set_size, query_size, odds_ratio, pvalue, fdr,
    overlap_genes`` (``fdr``: Benjamini-Hochberg over the tested sets), sorted by ``pvalue``
    then ``set``. Sets without any universe gene are not tested.
    """
    universe_index = _unique_names(universe, "universe")
    if universe_index.empty:
        raise ValueError("universe is empty; pass the genes that could have been selected")
    query_all = _unique_names(genes, "genes")
    in_universe = universe_index.get_indexer(query_all) >= 0
    if not in_universe.all():
        log.info(
            "%d of %d query genes are outside the universe and ignored, e.g. %s",
            int((~in_universe).sum()),
            len(query_all),
            examples(query_all[~in_universe]),
        )
    query = set(query_all[in_universe])
    n_universe, n_query = len(universe_index), len(query)
    universe_set = set(universe_index)
    rows = []
    for name, members in gene_sets.items():
        members_in = [g for g in dict.fromkeys(str(m) for m in members) if g in universe_set]
        if not members_in:
            continue
        hits = [g for g in members_in if g in query]
        rows.append((str(name), len(hits), len(members_in), ";".join(hits)))
    columns = [
        "set",
        "overlap",
        "set_size",
        "query_size",
        "odds_ratio",
        "pvalue",
        "fdr",
        "overlap_genes",
    ]
    if not rows:
        log.warning("no gene set shares a gene with the universe; nothing tested")
        return pd.DataFrame(columns=columns)
    names, overlap, set_size, overlap_genes = (list(c) for c in zip(*rows))
    k = np.asarray(overlap, dtype=np.int64)
    big_k = np.asarray(set_size, dtype=np.int64)
    pvalue = stats.hypergeom.sf(k - 1, n_universe, big_k, n_query)
    pvalue = np.clip(pvalue, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (k * (n_universe - big_k - n_query + k)) / ((big_k - k) * (n_query - k))
    frame = pd.DataFrame(
        {
            "set": names,
            "overlap": k,
            "set_size": big_k,
            "query_size": n_query,
            "odds_ratio": odds.astype(np.float64),
            "pvalue": pvalue,
            "fdr": benjamini_hochberg(pvalue),
            "overlap_genes": overlap_genes,
        }
    )
    frame = frame[frame["overlap"] >= min_overlap]
    return frame.sort_values(["pvalue", "set"], kind="stable").reset_index(drop=True)


def preranked_enrichment(
    ranking: pd.Series,
    gene_sets: Mapping[str, Sequence[str]],
    *,
    min_size: int = 5,
    max_size: int = 1000,
    alternative: Literal["greater", "less", "two-sided"] = "greater",
) -> pd.DataFrame:
    """Do a set's genes score higher than the other genes of a ranking? (Mann-Whitney U test.)

    ``ranking`` holds one score per gene (index = gene names, larger = more relevant, e.g.
    PageRank or a fold change). For each set with ``min_size <= m <= max_size`` genes in the
    ranking, the scores of those ``m`` genes are compared with the other ``N - m`` by the
    Mann-Whitney U statistic with mid-ranks for ties, the tie-corrected normal approximation and
    a 0.5 continuity correction (the same p-value as
    ``scipy.stats.mannwhitneyu(..., method="asymptotic")``). The test is analytic, without
    permutations, hence deterministic.

    Returns
    -------
    DataFrame with columns ``set, set_size, auc, statistic, zscore, pvalue, fdr`` (``auc`` =
    ``U / (m (N - m))``, the probability that a set gene outscores a non-set gene; ``fdr``:
    Benjamini-Hochberg), sorted by ``pvalue`` then ``set``.
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative={alternative!r}; expected 'greater', 'less' or 'two-sided'")
    if not isinstance(ranking, pd.Series):
        raise TypeError(
            f"ranking must be a pandas Series indexed by gene, got {type(ranking).__name__}"
        )
    index = pd.Index(ranking.index.astype(str))
    if not index.is_unique:
        raise ValueError(f"ranking has repeated genes, e.g. {examples(index[index.duplicated()])}")
    scores = ranking.to_numpy(dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(
            f"ranking has {int((~np.isfinite(scores)).sum())} NaN/inf score(s), e.g. for genes "
            f"{examples(index[~np.isfinite(scores)])}; drop or fill them first"
        )
    n = scores.size
    ranks = stats.rankdata(scores)
    _, tie_counts = np.unique(scores, return_counts=True)
    tie_term = float((tie_counts**3 - tie_counts).sum())
    rows = []
    for name, members in gene_sets.items():
        positions = index.get_indexer(pd.Index([str(m) for m in members]).unique())
        positions = positions[positions >= 0]
        m = positions.size
        if m < min_size or m > max_size or m == n:
            continue
        u = ranks[positions].sum() - m * (m + 1) / 2.0
        rows.append((str(name), m, u))
    columns = ["set", "set_size", "auc", "statistic", "zscore", "pvalue", "fdr"]
    if not rows:
        log.warning("no gene set has between %d and %d genes in the ranking", min_size, max_size)
        return pd.DataFrame(columns=columns)
    names, sizes, u_values = (list(c) for c in zip(*rows))
    m = np.asarray(sizes, dtype=np.float64)
    u = np.asarray(u_values, dtype=np.float64)
    other = n - m
    mean = m * other / 2.0
    sd = np.sqrt(m * other / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        if alternative == "greater":
            z = (u - mean - 0.5) / sd
            pvalue = stats.norm.sf(z)
        elif alternative == "less":
            z = (u - mean + 0.5) / sd
            pvalue = stats.norm.cdf(z)
        else:
            z = (u - mean - 0.5 * np.sign(u - mean)) / sd
            pvalue = np.minimum(2.0 * stats.norm.sf(np.abs(z)), 1.0)
    pvalue = np.where(sd > 0, pvalue, 1.0)
    frame = pd.DataFrame(
        {
            "set": names,
            "set_size": np.asarray(sizes, dtype=np.int64),
            "auc": u / (m * other),
            "statistic": u,
            "zscore": z,
            "pvalue": pvalue,
            "fdr": benjamini_hochberg(pvalue),
        }
    )
    return frame.sort_values(["pvalue", "set"], kind="stable").reset_index(drop=True)
