"""The scPRINT model, top to bottom (the original's ``scPrint`` network, without training code).

1. Each context gene becomes ``identity + expression + genomic position`` (:mod:`.tokens`); the
   expression encoder reads normalised counts (``"sum"``: fraction of the context's counts,
   ``"log"``: ``log2(1 + counts)``); masked genes get no expression term.
2. Cell tokens are prepended: the depth token (an MLP of ``log2(1 + depth)``) unless the decoder
   reads the depth, the base token, and one token per label class; 2.x order
   ``[depth, base, classes]``, 1.x order ``[base, depth, classes]`` (:attr:`ScPrint.cell_token_index`).
3. A pre-LayerNorm transformer encodes the sequence (:mod:`.transformer`); padded genes are never
   attended to. With ``cell_specific_blocks`` the genes are encoded alone and a separate 6-layer
   cell transformer reads them through cross-attention.
4. Read-outs: the ZINB decoder turns each output gene token into a mean (a softmax over the
   context times the library size), a dispersion and a zero logit; each class token may pass
   through an FSQ bottleneck, then its classifier gives logits over the labels of its class; the
   MVC decoder (when present) predicts expression from the mean cell token and gene identities.
5. Bottleneck generation (:meth:`ScPrint.decode_from_cell_tokens`): the output cell tokens, next
   to gene tokens without expression, go through the same transformer and decoders.

Attribute names are the original's (``gene_encoder``, ``expr_encoder``, ``pos_encoder``,
``class_encoder``, ``depth_encoder``, ``transformer``, ``expr_decoder``, ``cls_decoders``,
``bottleneck_mlps``, ``mvc_decoder``), so an original checkpoint's state dict loads unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .decoders import ClsDecoder, ExprDecoder, MVCDecoder
from .fsq import FSQ
from .tokens import (
    CategoryValueEncoder,
    ContinuousValueEncoder,
    GeneEncoder,
    PositionalEncoding,
    normalise_counts,
    reduce_gene_table,
)
from .transformer import Transformer

#: Layers of the cell transformer of ``cell_specific_blocks`` models (fixed in the original).
CELL_TRANSFORMER_LAYERS = 6


@dataclass
class ScPrintOutput:
    """Everything one forward pass produces (``B`` cells, ``L`` genes, ``C`` cell tokens, ``d`` width).

    Attributes:
        cell_tokens: ``(B, C, d)`` output cell tokens in :attr:`ScPrint.cell_token_index` order,
            class tokens after their FSQ bottleneck (the original's ``cell_embs``).
        cell_embedding: ``(B, d)`` mean of the class tokens (the base token without classes): the
            embedding the original's ``Embedder`` writes.
        class_embeddings: label class -> ``(B, d)`` output token of that class.
        gene_embeddings: ``(B, L, d)`` output gene tokens (``None`` for a ``cells_only`` pass).
        zinb_mean: ``(B, L)`` expected counts, summing over the context to the library size
            (0 at padding); ``None`` for a ``cells_only`` pass, as are the two below.
        zinb_dispersion: ``(B, L)`` inverse dispersion ``theta``, or ``None`` without ZINB.
        zinb_dropout_logit: ``(B, L)`` logit of the zero-inflation probability, or ``None``.
        logits: label class -> ``(B, n_labels)``.
        qk: per self-attention layer ``(q, k)``, each ``(B, n_heads, C' + L, head_dim)`` with
            ``C' = ScPrint.qk_cell_tokens`` cell tokens first (``C``, or 0 with
            ``cell_specific_blocks``), or ``None`` unless asked for.
        mvc: ``{"mean", "disp", "zero_logits"}`` of the MVC decoder, each ``(B, L)``, when the
            model has one and it was asked for.
    """

    cell_tokens: torch.Tensor
    cell_embedding: torch.Tensor
    class_embeddings: dict[str, torch.Tensor]
    gene_embeddings: torch.Tensor | None
    zinb_mean: torch.Tensor | None
    zinb_dispersion: torch.Tensor | None
    zinb_dropout_logit: torch.Tensor | None
    logits: dict[str, torch.Tensor]
    qk: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    mvc: dict[str, torch.Tensor] | None = None


def cell_token_layout(config: ModelConfig, label_classes: list[str]) -> dict[str, int]:
    """Position of each cell token: ``depth`` (when a token), ``base``, then the label classes."""
    if not config.depth_at_input:
        names = ["base"]
    elif config.depth_token_first:
        names = ["depth", "base"]
    else:
        names = ["base", "depth"]
    return {name: i for i, name in enumerate(names + list(label_classes))}


class ScPrint(nn.Module):
    """scPRINT: a transformer over a cell's genes with expression, label and embedding read-outs.

    Args:
        config: sizes and choices (:class:`ModelConfig`).
        n_genes: vocabulary size.
        label_sizes: label class -> number of labels its classifier scores (leaf labels), in
            class-token order (e.g. ``{"cell_type_ontology_term_id": 8}``); may be empty.
        gene_positions: ``(n_genes,)`` genomic position bin of each vocabulary gene (``-1``:
            unknown), or ``None`` for no position encoding.
        gene_embedding_init: optional precomputed ``(n_genes, dim)`` gene table, reduced to
            ``d_model`` (:func:`~scprint.model.tokens.reduce_gene_table`) and frozen when
            ``config.freeze_gene_embeddings``.
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
        if gene_positions is not None and tuple(gene_positions.shape) != (n_genes,):
            raise ValueError(
                f"gene_positions must have shape (n_genes,) = ({n_genes},), got {tuple(gene_positions.shape)}"
            )
        self.config = config
        self.n_genes = n_genes
        self.label_classes: list[str] = list(label_sizes)
        self.label_sizes = label_sizes
        self.cell_token_index = cell_token_layout(config, self.label_classes)
        self.n_cell_tokens = len(self.cell_token_index)

        d = config.d_model
        table = None
        if gene_embedding_init is not None:
            table = reduce_gene_table(torch.as_tensor(gene_embedding_init), d)
        self.gene_encoder = GeneEncoder(n_genes, d, table, freeze=config.freeze_gene_embeddings)
        self.expr_encoder = ContinuousValueEncoder(
            d, config.dropout, layers=config.expr_encoder_layers
        )
        self.has_positions = config.use_positions and gene_positions is not None
        if self.has_positions:
            self.pos_encoder = PositionalEncoding(d, gene_positions)
        self.class_encoder = CategoryValueEncoder(1 + len(self.label_classes), d)
        if config.depth_at_input:
            self.depth_encoder = ContinuousValueEncoder(
                d, config.dropout, layers=config.expr_encoder_layers
            )
        sizes = (config.n_heads, config.n_heads_kv, config.mlp_ratio, config.dropout)
        self.transformer = Transformer(
            d, config.n_layers, *sizes, cross_attention=config.cell_specific_blocks
        )
        self.cell_transformer = (
            Transformer(d, CELL_TRANSFORMER_LAYERS, *sizes, cross_attention=True)
            if config.cell_specific_blocks
            else None
        )
        #: cell tokens at the start of the sequences whose queries/keys ``forward`` returns
        #: (0 with ``cell_specific_blocks``: the gene transformer sees genes only)
        self.qk_cell_tokens = 0 if config.cell_specific_blocks else self.n_cell_tokens
        self.expr_decoder = ExprDecoder(
            d, config.dropout, zinb=config.zinb, use_depth=not config.depth_at_input
        )
        self.cls_decoders = nn.ModuleDict(
            {
                name: ClsDecoder(d, n, config.classifier_layers, config.dropout)
                for name, n in label_sizes.items()
            }
        )
        self.mvc_decoder = (
            MVCDecoder(d, config.mvc_decoder, zinb=config.zinb) if config.mvc_decoder else None
        )
        self._init_weights()
        bits = config.compress_class_dim
        if bits is not None:
            missing = sorted(set(self.label_classes) - set(bits))
            if missing:
                raise ValueError(
                    f"compress_class_dim must give bits for every label class; missing {missing}"
                )
            self.bottleneck_mlps = nn.ModuleDict(
                {name: FSQ([2] * bits[name], d) for name in self.label_classes}
            )
        else:
            self.bottleneck_mlps = None

    @property
    def gene_table(self) -> nn.Embedding:
        """The gene identity table."""
        return self.gene_encoder.embeddings

    def _init_weights(self) -> None:
        """The original's initialisation: linear weights ``N(0, 0.02)`` (residual output
        projections scaled by ``1/sqrt(2 n_layers)``), zero biases, classifier biases -0.13."""
        std = 0.02
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        blocks = list(self.transformer.blocks)
        if self.cell_transformer is not None:
            blocks += list(self.cell_transformer.blocks)
        for block in blocks:
            for weight in (block.mixer.out_proj.weight, block.mlp.fc2.weight):
                nn.init.normal_(weight, std=std / math.sqrt(2 * self.config.n_layers))
        if self.mvc_decoder is not None and hasattr(self.mvc_decoder, "fc2"):
            nn.init.normal_(
                self.mvc_decoder.fc2.weight, std=std / math.sqrt(2 * self.config.n_layers)
            )
        for decoder in self.cls_decoders.values():
            nn.init.constant_(decoder.out_layer.bias, -0.13)

    # ----------------------------------------------------------------------------------- inputs
    def _check_inputs(
        self, gene_ids: torch.Tensor, depth: torch.Tensor | None, counts: torch.Tensor | None
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
        if depth is not None and depth.shape != (gene_ids.shape[0],):
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
        tokens = self.gene_encoder(index)
        if self.has_positions:
            tokens = tokens + self.pos_encoder(index)
        return tokens

    def input_cell_tokens(self, depth: torch.Tensor) -> torch.Tensor:
        """The learned cell tokens of ``B`` cells ``(B, C, d)``; ``depth`` ``(B,)`` total counts."""
        batch = depth.shape[0]
        learned = self.class_encoder(
            torch.arange(1 + len(self.label_classes), device=depth.device).repeat(batch, 1)
        )
        if not self.config.depth_at_input:
            return learned
        depth_token = self.depth_encoder(torch.log2(1 + depth.float())).unsqueeze(1)
        if self.config.depth_token_first:
            return torch.cat([depth_token, learned], dim=1)
        return torch.cat([learned[:, :1], depth_token, learned[:, 1:]], dim=1)

    # ------------------------------------------------------------------------------- read-outs
    def _read_out(
        self,
        hidden: torch.Tensor,
        padding: torch.Tensor,
        library_size: torch.Tensor,
        depth: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Cell tokens, gene tokens, expression and logits of ``hidden`` ``(B, C + L, d)``; a
        ``hidden`` of the cell tokens alone ``(B, C, d)`` gives no gene tokens nor expression."""
        cells = hidden[:, : self.n_cell_tokens]
        genes = hidden[:, self.n_cell_tokens :] if hidden.shape[1] > self.n_cell_tokens else None
        expression: dict[str, torch.Tensor] = {}
        if genes is not None:
            log_depth = None
            if not self.config.depth_at_input:
                if depth is None:
                    raise ValueError(
                        "this model's expression decoder reads the cell depth; pass depth"
                    )
                log_depth = torch.log2(1 + depth.float())
            expression = self.expr_decoder(genes, padding, log_depth)
            expression["mean"] = library_size.unsqueeze(1).to(genes.dtype) * expression["mean"]
        if self.bottleneck_mlps is not None:
            cells = cells.clone()
            for name in self.label_classes:
                index = self.cell_token_index[name]
                cells[:, index] = self.bottleneck_mlps[name](cells[:, index])
        logits = {
            name: self.cls_decoders[name](cells[:, self.cell_token_index[name]])
            for name in self.label_classes
        }
        return cells, genes, expression, logits

    def cell_embedding(self, cell_tokens: torch.Tensor) -> torch.Tensor:
        """Default embedding ``(B, d)``: mean of the class tokens, or the base token without classes."""
        if not self.label_classes:
            return cell_tokens[:, self.cell_token_index["base"]]
        first = self.cell_token_index[self.label_classes[0]]
        return cell_tokens[:, first:].mean(dim=1)

    def class_embedding(self, output: ScPrintOutput, classes: list[str]) -> torch.Tensor:
        """Embedding ``(B, d)`` of some cell tokens (names of :attr:`cell_token_index`): the mean
        of their output tokens."""
        unknown = [c for c in classes if c not in self.cell_token_index]
        if unknown or not classes:
            raise ValueError(
                f"classes must be a non-empty subset of {list(self.cell_token_index)}, got {classes}"
            )
        positions = [self.cell_token_index[c] for c in classes]
        return output.cell_tokens[:, positions].mean(dim=1)

    def forward(
        self,
        gene_ids: torch.Tensor,
        counts: torch.Tensor,
        depth: torch.Tensor,
        target_depth: torch.Tensor | None = None,
        return_qk: bool = False,
        mask: torch.Tensor | None = None,
        return_mvc: bool = False,
        cells_only: bool = False,
    ) -> ScPrintOutput:
        """Encode cells and read them out.

        Args:
            gene_ids: ``(B, L)`` long vocabulary indices, ``-1`` = padding.
            counts: ``(B, L)`` raw counts of those genes.
            depth: ``(B,)`` total counts of each cell (the depth token, or the decoder's depth).
            target_depth: ``(B,)`` library size the ZINB means sum to over the context; default
                the counts of the context, ``counts.sum(1)`` (the original's ``depth_mult``).
                Denoising at ``k`` times the depth passes ``k * counts.sum(1)`` here and
                ``k * depth`` as ``depth``, as the original's ``predict_mode="denoise"``.
            return_qk: also return each layer's queries and keys.
            mask: ``(B, L)`` bool, True where the expression is hidden from the model.
            return_mvc: also run the MVC decoder (requires one).
            cells_only: only the cell tokens' read-outs (``cell_tokens``, ``cell_embedding``,
                ``class_embeddings``, ``logits``), equal to a full pass's, with less arithmetic:
                the expression decoder is skipped, and when the cell tokens share the gene
                sequence the last block computes queries, out-projection, MLP and final norm for
                the cell tokens alone (their keys and values still from every gene). The gene
                read-outs (``gene_embeddings``, ``zinb_*``) are ``None``.
        """
        self._check_inputs(gene_ids, depth, counts)
        if cells_only and (return_qk or return_mvc):
            raise ValueError("cells_only skips the gene tokens that return_qk/return_mvc need")
        padding = gene_ids < 0
        counts = counts.float().masked_fill(padding, 0.0)
        expression = normalise_counts(counts, self.config.normalisation)
        identity = self.gene_encoder(gene_ids.clamp_min(0))
        genes = identity + self.expr_encoder(expression, mask)
        if self.has_positions:
            genes = genes + self.pos_encoder(gene_ids.clamp_min(0))
        cell_inputs = self.input_cell_tokens(depth)
        if self.cell_transformer is None:
            sequence = torch.cat([cell_inputs, genes], dim=1)
            hidden, qk = self.transformer(
                sequence,
                self._padding_with_cells(padding),
                return_qk,
                outputs=self.n_cell_tokens if cells_only else None,
            )
        else:
            genes, qk = self.transformer(genes, padding, return_qk)
            cells, _ = self.cell_transformer(
                cell_inputs, None, context=genes, context_padding=padding
            )
            hidden = cells if cells_only else torch.cat([cells, genes], dim=1)
        library_size = counts.sum(1) if target_depth is None else target_depth
        cells, gene_out, expr, logits = self._read_out(hidden, padding, library_size, depth)
        mvc = None
        if return_mvc:
            if self.mvc_decoder is None:
                raise ValueError("this model has no MVC decoder (config.mvc_decoder is None)")
            mvc = self.mvc_decoder(cells.mean(dim=1), identity, padding)
            mvc["mean"] = library_size.unsqueeze(1).to(mvc["mean"].dtype) * mvc["mean"]
        return ScPrintOutput(
            cell_tokens=cells,
            cell_embedding=self.cell_embedding(cells),
            class_embeddings={n: cells[:, self.cell_token_index[n]] for n in self.label_classes},
            gene_embeddings=gene_out,
            zinb_mean=expr.get("mean"),
            zinb_dispersion=expr.get("disp"),
            zinb_dropout_logit=expr.get("zero_logits"),
            logits=logits,
            qk=qk,
            mvc=mvc,
        )

    def decode_from_cell_tokens(
        self,
        cell_tokens: torch.Tensor,
        gene_ids: torch.Tensor,
        target_depth: torch.Tensor,
        depth: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Bottleneck generation: regenerate expression from cell tokens and gene identities only.

        Args:
            cell_tokens: ``(B, C, d)`` (e.g. :attr:`ScPrintOutput.cell_tokens`).
            gene_ids: ``(B, L)`` long vocabulary indices of the genes to generate, ``-1`` = padding.
            target_depth: ``(B,)`` library size the generated means sum to over the context.
            depth: ``(B,)`` total counts, needed only when the decoder reads the depth
                (``config.depth_at_input=False``).

        Returns:
            ``{"mean", "dispersion", "dropout_logit"}`` each ``(B, L)`` (the last two only with
            ZINB), ``"cell_tokens"`` ``(B, C, d)`` and ``"logits"`` (label class -> ``(B, n)``)
            read from the regenerated sequence.
        """
        self._check_inputs(gene_ids, depth, None)
        if cell_tokens.shape[1:] != (self.n_cell_tokens, self.config.d_model):
            raise ValueError(
                f"cell_tokens must be (batch, {self.n_cell_tokens}, {self.config.d_model}), "
                f"got {tuple(cell_tokens.shape)}"
            )
        if target_depth.shape != (gene_ids.shape[0],):
            raise ValueError(
                f"target_depth must be (batch,) = ({gene_ids.shape[0]},), got {tuple(target_depth.shape)}"
            )
        padding = gene_ids < 0
        genes = self.gene_tokens(gene_ids).to(cell_tokens.dtype)
        if self.cell_transformer is None:
            sequence = torch.cat([cell_tokens, genes], dim=1)
            hidden, _ = self.transformer(sequence, self._padding_with_cells(padding))
        else:  # genes cross-attend to the given cell tokens, which stay as they are
            genes, _ = self.transformer(genes, padding, context=cell_tokens)
            hidden = torch.cat([cell_tokens, genes], dim=1)
        cells, _, expr, logits = self._read_out(hidden, padding, target_depth, depth)
        out = {"mean": expr["mean"], "cell_tokens": cells, "logits": logits}
        if self.config.zinb:
            out["dispersion"] = expr["disp"]
            out["dropout_logit"] = expr["zero_logits"]
        return out

    def _padding_with_cells(self, padding: torch.Tensor) -> torch.Tensor:
        cells = torch.zeros(
            padding.shape[0], self.n_cell_tokens, dtype=torch.bool, device=padding.device
        )
        return torch.cat([cells, padding], dim=1)
