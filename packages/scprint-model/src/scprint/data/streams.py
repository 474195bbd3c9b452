"""Training batches: cells of one or many datasets, label-balanced, and a validation split.

The Lightning data module built on these streams is :class:`scprint.training.CellDataModule`;
nothing here imports Lightning.

Batches are a pure function of ``(seed, rank, step)``: the training stream is an infinite
:class:`~torch.utils.data.IterableDataset` that starts at the trainer's current step, so resuming
from a checkpoint replays exactly the batches an uninterrupted run would have seen, and each DDP
rank draws its own cells. When every source is in memory, each batch draws its cells at random
(label-balanced) from all of them (:class:`TrainingStream`). When a source is read from disk (a
large ``.h5ad``/``.zarr``, a TileDB-SOMA experiment), cells are streamed in shuffled contiguous
blocks through a buffer of bounded size (:class:`BlockStream`); its batches are a pure function of
``(seed, rank, world size, data-loading workers, step)``, so resume with the same settings is exact.

Each training batch holds the full counts of the context genes and a *thinned* copy (each count
binomially down-sampled with a per-cell keep probability), the input of the denoising task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .ontology import LabelEncoder, is_term_id, is_unknown, label_values, term_ancestors, term_label
from .sampling import SAMPLING_METHODS, sample_context
from .source import BYTES_PER_VALUE, CellSource
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

#: ``reader(source_id, rows) -> (counts CSR over the matched genes, depth)`` of some cells.
Reader = Callable[[int, np.ndarray], tuple[sp.csr_matrix, np.ndarray]]


@dataclass
class SamplingOptions:
    """How batches are drawn.

    Attributes:
        batch_size: cells per batch (per process).
        max_len: genes per cell.
        pad_with_unexpressed: fill the context with unexpressed genes after the expressed ones.
        thinning: range ``(low, high)`` of the per-cell keep probability of the binomial
            down-sampling that makes the denoising input (``(1, 1)`` disables it).
        gene_sampling: how expressed genes are chosen, ``"weighted"`` or ``"random"`` (see
            :func:`~scprint.data.sampling.sample_context`).
        balance_weight: ``w`` of the label-balanced sampling, cell weight ``w / (n + w)`` with ``n``
            the cells sharing its labels; ``None`` samples cells uniformly.
    """

    batch_size: int = 32
    max_len: int = 512
    pad_with_unexpressed: bool = True
    thinning: tuple[float, float] = (0.1, 1.0)
    balance_weight: float | None = 100.0
    gene_sampling: str = "weighted"

    def __post_init__(self) -> None:
        if self.gene_sampling not in SAMPLING_METHODS:
            raise ValueError(
                f"gene_sampling must be one of {SAMPLING_METHODS}, got {self.gene_sampling!r}"
            )
        low, high = self.thinning
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"thinning must be (low, high) with 0 < low <= high <= 1, got {self.thinning!r}"
            )
        if self.batch_size < 1 or self.max_len < 1:
            raise ValueError(
                f"batch_size and max_len must be positive, got {self.batch_size}, {self.max_len}"
            )
        if self.balance_weight is not None and self.balance_weight <= 0:
            raise ValueError(
                f"balance_weight must be positive or None, got {self.balance_weight!r}"
            )


def encode_labels(
    sources: Sequence[CellSource], encoders: dict[str, LabelEncoder]
) -> list[np.ndarray]:
    """Per source, ``(n_cells, n_classes)`` int64 label codes (``-1`` unknown or column absent)."""
    out = []
    for source in sources:
        codes = np.full((source.n_cells, len(encoders)), -1, dtype=np.int64)
        for j, (column, encoder) in enumerate(encoders.items()):
            found = label_values(source.meta.obs, column)
            if found is not None:
                values, _ = found
                codes[:, j] = encoder.encode(values.tolist())
        out.append(codes)
    return out


def build_label_encoders(
    sources: Sequence[CellSource],
    label_columns: Sequence[str],
    coarse_requested: Sequence[str] = (),
    start_from: dict[str, LabelEncoder] | None = None,
    allow_missing: bool = True,
) -> dict[str, LabelEncoder]:
    """One :class:`LabelEncoder` per label column from the training sources.

    Args:
        sources: the training datasets.
        label_columns: obs columns to classify.
        coarse_requested: extra ontology terms to accept as coarse labels.
        start_from: encoders to extend (fine-tuning): they come first, in order, each keeping its
            labels and appending the unseen ones as new leaves; new columns follow.
        allow_missing: a dataset without a label column trains unlabelled for it (logged);
            otherwise it raises.

    Raises:
        ValueError: a label column is absent from every dataset, or from one when not
            ``allow_missing`` (naming the dataset and its columns).
    """
    encoders = dict(start_from or {})
    for column in label_columns:
        values: list = []
        aliases: dict[str, str] = {}
        for source in sources:
            found = label_values(source.meta.obs, column)
            if found is None:
                if not allow_missing:
                    raise ValueError(
                        f"dataset {source.name!r} has no label column {column!r}; its obs columns "
                        f"are {sorted(source.meta.obs.columns)[:8]}; add the column, or set "
                        "data.allow_missing_labels: true to train its cells unlabelled for it"
                    )
                log.warning(
                    "dataset %s has no label column %r; its cells are unlabelled for it",
                    source.name,
                    column,
                )
                continue
            values += found[0].tolist()
            aliases.update(found[1])
        if not values:
            columns = sorted({c for s in sources for c in s.meta.obs.columns})
            raise ValueError(
                f"label column {column!r} is in none of the datasets {[s.name for s in sources]}; "
                f"obs columns found: {columns[:12]}"
            )
        if column in encoders:
            encoders[column] = _extended(encoders[column], values, aliases)
        else:
            encoders[column] = LabelEncoder.build(column, values, aliases, coarse_requested)
    return encoders


def _extended(encoder: LabelEncoder, values: list, aliases: dict[str, str]) -> LabelEncoder:
    """``encoder`` with the values it cannot encode appended as new leaves (existing indices kept)."""
    codes = encoder.encode(values)
    new = sorted({str(v) for v, c in zip(values, codes) if c < 0 and not is_unknown(v)})
    ancestors = {
        label: [a for a in (term_ancestors(label) or []) if a != label] if is_term_id(label) else []
        for label in new
    }
    if new:
        log.info("label class %r: %d new labels %s", encoder.name, len(new), new[:5])
    return LabelEncoder(
        name=encoder.name,
        classes=[*encoder.classes, *new],
        coarse=list(encoder.coarse),
        ancestors={**encoder.ancestors, **ancestors},
        names={**{t: term_label(t) for t in new if is_term_id(t)}, **encoder.names},
        aliases={**aliases, **encoder.aliases},
    )


class CellSet:
    """A set of cells across sources, and how to turn some of them into a batch."""

    def __init__(
        self,
        sources: Sequence[CellSource],
        labels: Sequence[np.ndarray],
        source_id: np.ndarray,
        row: np.ndarray,
        options: SamplingOptions,
    ) -> None:
        self.sources, self.labels = sources, labels
        self.source_id, self.row = source_id, row
        self.options = options

    def __len__(self) -> int:
        return len(self.row)

    def read(self, sid: int, rows: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Counts and depth of ``rows`` of source ``sid`` (the default :data:`Reader`)."""
        return self.sources[sid].read(rows)

    def batch(
        self, picks: np.ndarray, rng: np.random.Generator, reader: Reader | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs of cells ``picks`` (indices into this set), read with ``reader``."""
        reader = reader or self.read
        options = self.options
        n = len(picks)
        gene_ids = np.full((n, options.max_len), -1, dtype=np.int64)
        counts = np.zeros((n, options.max_len), dtype=np.float32)
        depth = np.zeros(n, dtype=np.float32)
        n_classes = self.labels[0].shape[1] if self.labels else 0
        labels = np.full((n, n_classes), -1, dtype=np.int64)
        source_ids = self.source_id[picks]
        for sid in np.unique(source_ids):
            where = np.flatnonzero(source_ids == sid)
            rows = self.row[picks[where]]
            block, depth[where] = reader(int(sid), rows)
            gene_ids[where], counts[where] = sample_context(
                block,
                self.sources[sid].vocab_index,
                options.max_len,
                rng,
                options.pad_with_unexpressed,
                options.gene_sampling,
            )
            labels[where] = self.labels[sid][rows]
        keep = rng.uniform(*options.thinning, size=(n, 1))
        thinned = rng.binomial(counts.astype(np.int64), keep).astype(np.float32)
        return {
            "gene_ids": torch.from_numpy(gene_ids),
            "counts": torch.from_numpy(counts),
            "thinned_counts": torch.from_numpy(thinned),
            "depth": torch.from_numpy(depth),
            "labels": torch.from_numpy(labels),
        }


class TrainingStream(IterableDataset):
    """Infinite stream of training batches; batch ``step`` depends only on ``(seed, rank, step)``."""

    def __init__(
        self, cells: CellSet, weights: np.ndarray, seed: int, rank: int = 0, start_step: int = 0
    ) -> None:
        self.cells, self.weights = cells, weights
        self.seed, self.rank, self.start_step = seed, rank, start_step

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        offset, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        step = self.start_step + offset
        while True:
            rng = np.random.default_rng([self.seed, self.rank, step])
            picks = rng.choice(len(self.cells), size=self.cells.options.batch_size, p=self.weights)
            yield self.cells.batch(picks, rng)
            step += stride


class BlockStream(IterableDataset):
    """Infinite stream of training batches read from disk in shuffled contiguous blocks.

    The training cells of each source are cut into blocks of ``source.block_size`` consecutive
    rows. Every epoch the blocks are shuffled (the same way on every process) and dealt out to
    ``world_size * num_workers`` shares, so each DDP rank and each data-loading worker reads its
    own blocks. A share reads its blocks in buffers of about ``source.buffer_mb`` MB (many blocks
    from across the data), shuffles the cells of the buffer, and cuts them into batches (the last
    incomplete batch of a buffer is dropped). With label-balanced weights, a buffer's cells are instead drawn with
    replacement with probability proportional to their weights, which balances labels within what
    the buffer holds. Memory is bounded by one buffer, whatever the number of cells.

    Batch ``step`` depends only on ``(seed, rank, world_size, num_workers, step)``: worker ``w``
    produces the steps ``start_step + w + k * num_workers`` from share
    ``rank * num_workers + (start_step + w) % num_workers``.
    """

    def __init__(
        self,
        cells: CellSet,
        weights: np.ndarray,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        self.cells, self.seed = cells, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.weights = weights if np.ptp(weights) > 0 else None
        batch_size = cells.options.batch_size
        per_cell = min(
            BYTES_PER_VALUE * max(float(getattr(s, "values_per_cell", 1.0)), 1.0)
            for s in cells.sources
        )
        budget = min(float(s.buffer_mb) for s in cells.sources) * 2**20
        self.buffer_cells = max(int(budget // per_cell), 2 * batch_size)

    def _blocks(self, n_shares: int) -> list[np.ndarray]:
        """Blocks of training-cell indices, each from one source, in row order."""
        cells = self.cells
        order = np.lexsort((cells.row, cells.source_id))
        sids = cells.source_id[order]
        cuts = np.flatnonzero(np.diff(sids)) + 1
        blocks = []
        # small data: at least a few blocks per share, so that every share gets cells
        cap = max(1, len(order) // (4 * n_shares))
        for part in np.split(order, cuts):
            size = max(1, min(int(cells.sources[cells.source_id[part[0]]].block_size), cap))
            blocks += [part[i : i + size] for i in range(0, len(part), size)]
        return blocks

    def _buffers(self, blocks: list[np.ndarray], share: int, n_shares: int, epoch: int) -> list:
        """The cells (training-cell indices) of each buffer of ``share`` in ``epoch``."""
        perm = np.random.default_rng([self.seed, 11, epoch]).permutation(len(blocks))
        buffers, current, held = [], [], 0
        for b in perm[share::n_shares]:
            current.append(blocks[b])
            held += len(blocks[b])
            if held >= self.buffer_cells:
                buffers.append(np.concatenate(current))
                current, held = [], 0
        if current:
            buffers.append(np.concatenate(current))
        return buffers

    def _load(self, members: np.ndarray) -> Reader:
        """Read the cells ``members`` (in pieces of an eighth of a buffer) and a reader over them."""
        cells, loaded = self.cells, {}
        piece = max(1, self.buffer_cells // 8)
        for sid in np.unique(cells.source_id[members]):
            rows = np.sort(cells.row[members[cells.source_id[members] == sid]])
            parts = [cells.read(int(sid), rows[i : i + piece]) for i in range(0, len(rows), piece)]
            counts = sp.vstack([part[0] for part in parts], format="csr")
            loaded[int(sid)] = (rows, counts, np.concatenate([part[1] for part in parts]))
            del parts

        def reader(sid: int, rows: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
            held, counts, depth = loaded[sid]
            where = np.searchsorted(held, rows)
            return counts[where], depth[where]

        return reader

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        offset, n_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        n_shares = self.world_size * n_workers
        share = self.rank * n_workers + (self.start_step + offset) % n_workers
        step = self.start_step + offset
        local = step // n_workers  # index of the batch in this share's stream
        batch_size = self.cells.options.batch_size
        blocks = self._blocks(n_shares)
        epoch, first = 0, 0  # first: index of the epoch's first batch in the share's stream
        while True:
            buffers = self._buffers(blocks, share, n_shares, epoch)
            n_batches = [len(b) // batch_size for b in buffers]
            if sum(n_batches) == 0:
                raise ValueError(
                    f"{len(self.cells)} training cells over {n_shares} shares (ranks x data-loading "
                    f"workers) leave share {share} no full batch of {batch_size}; use fewer "
                    "workers or a smaller batch_size"
                )
            for index, (members, count) in enumerate(zip(buffers, n_batches)):
                if local >= first + count:
                    first += count
                    continue
                rng = np.random.default_rng([self.seed, 13, epoch, share, index])
                if self.weights is None:
                    picks = members[rng.permutation(len(members))]
                else:
                    p = self.weights[members]
                    picks = members[rng.choice(len(members), size=len(members), p=p / p.sum())]
                reader = self._load(members)
                while local < first + count:
                    at = (local - first) * batch_size
                    batch_rng = np.random.default_rng([self.seed, self.rank, step])
                    yield self.cells.batch(picks[at : at + batch_size], batch_rng, reader)
                    local += 1
                    step += n_workers
                first += count
                del reader
            epoch += 1


def training_stream(
    cells: CellSet,
    weights: np.ndarray,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
) -> IterableDataset:
    """The training stream of ``cells``: :class:`TrainingStream` when every source is in memory,
    else :class:`BlockStream` (bounded memory, contiguous reads)."""
    if all(getattr(source, "in_memory", True) for source in cells.sources):
        return TrainingStream(cells, weights, seed, rank=rank, start_step=start_step)
    return BlockStream(cells, weights, seed, rank, world_size, start_step)


def worker_context(sources: Sequence[CellSource], num_workers: int) -> str | None:
    """DataLoader ``multiprocessing_context``: ``"spawn"`` when workers read a source that a forked
    process cannot (TileDB is not fork-safe: a forked worker hangs), else the default."""
    if num_workers and any(not getattr(source, "fork_safe", True) for source in sources):
        return "spawn"
    return None


class ValidationBatches(Dataset):
    """Fixed validation batches (same cells, genes and thinning every time), split across ranks.

    With several processes each rank gets an equal share (the last incomplete share is dropped);
    with fewer batches than ranks every rank evaluates all of them.
    """

    def __init__(self, cells: CellSet, seed: int, rank: int = 0, world_size: int = 1) -> None:
        size = cells.options.batch_size
        starts = list(range(0, len(cells), size))
        if len(starts) >= world_size:
            # every rank gets the same number of batches (collectives stay in step)
            starts = starts[: len(starts) // world_size * world_size][rank::world_size]
        self.cells, self.seed = cells, seed
        self.starts = starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = self.starts[i]
        picks = np.arange(start, min(start + self.cells.options.batch_size, len(self.cells)))
        return self.cells.batch(picks, np.random.default_rng([self.seed, 1_000_003, start]))


def gene_embedding_table(
    table: str | Path | pd.DataFrame, vocab: Vocabulary, seed: int
) -> torch.Tensor:
    """``(n_genes, dim)`` initial gene-identity table: rows of ``table`` (index Ensembl id or
    symbol, numeric columns) matched to ``vocab``; unmatched genes drawn at the table's scale."""
    if not isinstance(table, pd.DataFrame):
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"gene embedding table {str(path)!r} does not exist")
        table = (
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, index_col=0)
        )
    values = table.select_dtypes("number")
    if values.shape[1] == 0:
        raise ValueError(
            "gene embedding table has no numeric columns (rows = genes, columns = dimensions)"
        )
    index = vocab.index_of([str(g) for g in values.index])
    found = index >= 0
    if found.sum() == 0:
        raise ValueError(
            f"no gene of the embedding table matches the vocabulary (table index starts {list(values.index[:3])})"
        )
    array = values.to_numpy(np.float32)
    rng = np.random.default_rng(seed)
    scale = float(array[found].std())
    init = rng.normal(0.0, scale, size=(len(vocab), array.shape[1])).astype(np.float32)
    init[index[found]] = array[found]
    log.info(
        "gene embeddings: %d of %d vocabulary genes initialised from the table",
        int(found.sum()),
        len(vocab),
    )
    return torch.from_numpy(init)


def pca_gene_table(
    sources: Sequence[CellSource],
    rows: Sequence[np.ndarray],
    vocab: Vocabulary,
    n_components: int,
    seed: int,
) -> torch.Tensor:
    """``(n_genes, n_components)`` gene identities from the training cells themselves, for data
    without precomputed gene vectors (``data.gene_embeddings: pca``).

    The ``rows`` of each bound ``sources`` dataset, log-normalised (``log1p(1e4 * counts /
    depth)``) on the whole vocabulary (a gene a dataset lacks reads 0 there), go through a
    truncated SVD; row ``g`` is gene ``g``'s loadings times the singular values, scaled to unit
    standard deviation, so genes that vary together start close. Genes no training cell
    expresses get zero rows.
    """
    from sklearn.decomposition import TruncatedSVD

    if n_components < 1 or n_components >= len(vocab):
        raise ValueError(
            f"PCA gene embeddings need 1 <= gene_embedding_dim < vocabulary size ({len(vocab)}), "
            f"got {n_components}"
        )
    blocks = []
    for source, chosen in zip(sources, rows):
        if not isinstance(source, CellSource) or source.vocab_index is None:
            raise ValueError(
                "PCA gene embeddings are computed from h5ad/zarr/AnnData datasets bound to the "
                f"vocabulary; {getattr(source, 'name', source)!r} is not one"
            )
        chosen = np.sort(np.asarray(chosen, dtype=np.int64))
        if chosen.size == 0:
            continue
        counts = sp.csr_matrix(source.rows(chosen), dtype=np.float32)
        depth = np.asarray(counts.sum(axis=1)).ravel()
        scaled = (sp.diags(1e4 / np.maximum(depth, 1)) @ counts).tocoo()
        blocks.append(
            sp.csr_matrix(
                (np.log1p(scaled.data), (scaled.row, source.vocab_index[scaled.col])),
                shape=(len(chosen), len(vocab)),
            )
        )
    matrix = sp.vstack(blocks).tocsr()
    svd = TruncatedSVD(n_components=n_components, random_state=seed).fit(matrix)
    loadings = (svd.components_ * svd.singular_values_[:, None]).T.astype(np.float32)
    loadings /= max(float(loadings.std()), 1e-12)
    log.info(
        "gene embeddings: PCA of %d training cells, %d components (%.0f%% of the variance)",
        matrix.shape[0],
        n_components,
        100 * float(svd.explained_variance_ratio_.sum()),
    )
    return torch.from_numpy(loadings)
