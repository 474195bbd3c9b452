"""The scPRINT model, top to bottom.

1. Each context gene becomes ``identity + expression + genomic position`` (:mod:`.tokens`).
2. The cell tokens (base, depth, one per label class) are prepended.
3. A pre-LayerNorm transformer encodes the sequence; padded genes are never attended to.
4. Read-outs: the output gene tokens give ZINB parameters of every context gene at a target depth;
   each class token gives logits over that class's leaf labels; the cell embedding is the mean of
   the class tokens (the base token when there are no classes).
5. Bottleneck generation: the output cell tokens alone, next to gene-identity tokens without any
   expression, go through the same transformer and regenerate the profile
   (:meth:`ScPrint.decode_from_cell_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .decoders import Classifier, ZinbDecoder
from .tokens import (
    CellTokens,
    ExpressionEncoder,
    GeneIdentity,
    normalise_counts,
    sinusoidal_encoding,
)
from .transformer import Transformer


@dataclass
class ScPrintOutput:
    """Everything one forward pass produces (``B`` cells, ``L`` genes, ``C`` cell tokens, ``d`` width).

    Attributes:
        cell_tokens: ``(B, C, d)`` output cell tokens (base, depth, then one per label class).
        cell_embedding: ``(B, d)`` mean of the class tokens (the base token if there are no classes).
        class_embeddings: label class -> ``(B, d)`` output token of that class.
        gene_embeddings: ``(B, L, d)`` output gene tokens.
        zinb_mean: ``(B, L)`` ZINB mean, in counts at the target depth (0 at padding).
        zinb_dispersion: ``(B, L)`` inverse dispersion ``theta``.
        zinb_dropout_logit: ``(B, L)`` logit of the zero-inflation probability.
        logits: label class -> ``(B, n_leaf_labels)``.
        qk: per layer ``(q, k)``, each ``(B, heads, C + L, head_dim)`` (gene positions ``[C:]``), or
            ``None`` unless asked for.
    """

    cell_tokens: torch.Tensor
    cell_embedding: torch.Tensor
    class_embeddings: dict[str, torch.Tensor]
    gene_embeddings: torch.Tensor
    zinb_mean: torch.Tensor
    zinb_dispersion: torch.Tensor
    zinb_dropout_logit: torch.Tensor
    logits: dict[str, torch.Tensor]
    qk: list[tuple[torch.Tensor, torch.Tensor]] | None = None


class ScPrint(nn.Module):
    """Transformer over a cell's genes with expression and label read-outs.

    Args:
        config: sizes and choices (:class:`ModelConfig`).
        n_genes: vocabulary size.
        label_sizes: label class -> number of leaf labels, in class-token order
            (e.g. ``{"cell_type": 4}``); may be empty.
        gene_positions: ``(n_genes,)`` long genomic position bin of each vocabulary gene (``-1``:
            unknown), or ``None`` for no position encoding.
        gene_embedding_init: optional ``(n_genes, dim)`` initial gene-identity table.
    """

    def __init__(
        self,
        config: ModelConfig,
        n_genes: int,
        label_sizes: dict[str, int] | None = None,
        gene_positions: torch.Tensor | None = None,
        gene_embedding_init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        label_sizes = dict(label_sizes or {})
        if n_genes < 1:
            raise ValueError(f"n_genes must be positive, got {n_genes}")
        for name, size in label_sizes.items():
            if size < 1:
                raise ValueError(f"label class {name!r} needs at least one label, got {size}")
        self.config = config
        self.n_genes = n_genes
        self.label_classes: list[str] = list(label_sizes)
        self.label_sizes = label_sizes
        self.cell_token_index: dict[str, int] = {"base": 0, "depth": 1}
        self.cell_token_index.update({name: 2 + i for i, name in enumerate(self.label_classes)})
        self.n_cell_tokens = len(self.cell_token_index)

        d = config.d_model
        self.gene_identity = GeneIdentity(
            n_genes,
            d,
            dim=config.gene_embedding_dim,
            init=gene_embedding_init,
            freeze=config.freeze_gene_embeddings,
        )
        self.expression = ExpressionEncoder(d)
        self.cell_tokens = CellTokens(d, len(self.label_classes))
        if gene_positions is not None and tuple(gene_positions.shape) != (n_genes,):
            raise ValueError(
                f"gene_positions must have shape (n_genes,) = ({n_genes},), got {tuple(gene_positions.shape)}"
            )
        use_positions = config.use_positions and gene_positions is not None
        positions = gene_positions.long() if use_positions else torch.full((n_genes,), -1)
        self.register_buffer("gene_positions", positions)
        self.transformer = Transformer(
            d, config.n_layers, config.n_heads, config.mlp_ratio, config.dropout
        )
        self.zinb = ZinbDecoder(d)
        self.classifiers = nn.ModuleDict(
            {name: Classifier(d, n) for name, n in label_sizes.items()}
        )

    def _check_inputs(
        self, gene_ids: torch.Tensor, depth: torch.Tensor, counts: torch.Tensor | None
    ) -> None:
        if gene_ids.dim() != 2:
            raise ValueError(f"gene_ids must be (batch, genes), got shape {tuple(gene_ids.shape)}")
        if gene_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"gene_ids must be an integer tensor of vocabulary indices, got {gene_ids.dtype}"
            )
        if counts is not None and counts.shape != gene_ids.shape:
            raise ValueError(
                f"counts must have the shape of gene_ids {tuple(gene_ids.shape)}, got {tuple(counts.shape)}"
            )
        if depth.shape != (gene_ids.shape[0],):
            raise ValueError(
                f"depth must be (batch,) = ({gene_ids.shape[0]},), got {tuple(depth.shape)}"
            )
        if gene_ids.numel() and int(gene_ids.max()) >= self.n_genes:
            raise ValueError(
                f"gene_ids holds index {int(gene_ids.max())} but the vocabulary has {self.n_genes} genes "
                "(valid: 0..n_genes-1, and -1 for padding)"
            )

    def gene_tokens(self, gene_ids: torch.Tensor) -> torch.Tensor:
        """Identity + genomic-position tokens ``(B, L, d)`` of ``gene_ids`` ``(B, L)`` (-1 = padding)."""
        index = gene_ids.clamp_min(0)
        tokens = self.gene_identity(index)
        positions = self.gene_positions[index].masked_fill(gene_ids < 0, -1)
        return tokens + sinusoidal_encoding(positions, self.config.d_model).to(tokens.dtype)

    def forward(
        self,
        gene_ids: torch.Tensor,
        counts: torch.Tensor,
        depth: torch.Tensor,
        target_depth: torch.Tensor | None = None,
        return_qk: bool = False,
    ) -> ScPrintOutput:
        """Encode cells and read them out.

        Args:
            gene_ids: ``(B, L)`` long vocabulary indices, ``-1`` = padding.
            counts: ``(B, L)`` float raw counts of those genes.
            depth: ``(B,)`` total counts of each cell (the depth token).
            target_depth: ``(B,)`` depth at which the ZINB mean is expressed (default ``depth``).
            return_qk: also return each layer's queries and keys.
        """
        self._check_inputs(gene_ids, depth, counts)
        padding = gene_ids < 0
        expression = normalise_counts(counts.float(), padding, self.config.normalisation)
        genes = self.gene_tokens(gene_ids) + self.expression(expression)
        sequence = torch.cat([self.cell_tokens(depth), genes], dim=1)
        hidden, qk = self.transformer(sequence, self._padding_with_cells(padding), return_qk)
        cell_tokens, gene_tokens = hidden[:, : self.n_cell_tokens], hidden[:, self.n_cell_tokens :]
        zinb = self.zinb(
            gene_tokens, cell_tokens[:, 0], padding, depth if target_depth is None else target_depth
        )
        class_embeddings = {
            name: cell_tokens[:, self.cell_token_index[name]] for name in self.label_classes
        }
        return ScPrintOutput(
            cell_tokens=cell_tokens,
            cell_embedding=self.cell_embedding(cell_tokens),
            class_embeddings=class_embeddings,
            gene_embeddings=gene_tokens,
            zinb_mean=zinb["mean"],
            zinb_dispersion=zinb["dispersion"],
            zinb_dropout_logit=zinb["dropout_logit"],
            logits={
                name: self.classifiers[name](token) for name, token in class_embeddings.items()
            },
            qk=qk,
        )

    def cell_embedding(self, cell_tokens: torch.Tensor) -> torch.Tensor:
        """Default embedding ``(B, d)``: mean of the class tokens, or the base token without classes."""
        if not self.label_classes:
            return cell_tokens[:, 0]
        return cell_tokens[:, 2:].mean(dim=1)

    def decode_from_cell_tokens(
        self, cell_tokens: torch.Tensor, gene_ids: torch.Tensor, depth: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Bottleneck generation: regenerate expression from cell tokens and gene identities only.

        Args:
            cell_tokens: ``(B, n_cell_tokens, d)`` (e.g. :attr:`ScPrintOutput.cell_tokens`).
            gene_ids: ``(B, L)`` long vocabulary indices of the genes to generate, ``-1`` = padding.
            depth: ``(B,)`` total counts at which the means are expressed.

        Returns:
            ``{"mean", "dispersion", "dropout_logit"}``, each ``(B, L)``.
        """
        self._check_inputs(gene_ids, depth, None)
        if cell_tokens.shape[1:] != (self.n_cell_tokens, self.config.d_model):
            raise ValueError(
                f"cell_tokens must be (batch, {self.n_cell_tokens}, {self.config.d_model}), "
                f"got {tuple(cell_tokens.shape)}"
            )
        padding = gene_ids < 0
        sequence = torch.cat([cell_tokens, self.gene_tokens(gene_ids).to(cell_tokens.dtype)], dim=1)
        hidden, _ = self.transformer(sequence, self._padding_with_cells(padding))
        return self.zinb(hidden[:, self.n_cell_tokens :], hidden[:, 0], padding, depth)

    def _padding_with_cells(self, padding: torch.Tensor) -> torch.Tensor:
        cells = torch.zeros(
            padding.shape[0], self.n_cell_tokens, dtype=torch.bool, device=padding.device
        )
        return torch.cat([cells, padding], dim=1)
