"""The scPRINT-2 model, top to bottom (the ``scprint2`` package's ``scPRINT2`` network).

1. Each context gene becomes ``identity + expression + genomic position``. The identity comes
   from a gene table, optionally through a trainable adapter (``Linear, ReLU, Linear``); the
   expression encoder reads normalised counts (``"sum"``: fraction of the context's counts,
   ``"log"``: ``log2(1 + counts)``), either alone (``continuous``) or with the same genes in the
   cell's nearest neighbours (``metacell``, :mod:`.metacell`). An optional metacell token
   (``0`` = a single cell) comes before the genes.
2. Cell tokens: a base token and one per label class (no depth token: the decoders read the depth).
3. A pre-LayerNorm transformer encodes the genes. Without cell-specific blocks the cell tokens are
   prepended to the gene sequence; with them, a separate cell transformer (width
   ``d_model_cell``) encodes the cell tokens, cross-attending in every block to the genes' outputs.
4. Read-outs: the ZINB decoder turns each output gene token and ``log2(1 + depth)`` into a mean (a
   softmax over the context times the library size), a dispersion and a zero logit. Each cell
   token may pass through its compressor (:mod:`.vae` from 8 dimensions, :mod:`.fsq` below); the
   classifier of a class reads its *code* (the VAE mean / the FSQ projection before rounding), or
   the token itself without compressors. The MVC decoder (when present) predicts expression from
   the mean cell token, the gene tokens and the depth.
5. Generation (:meth:`ScPrint2.decode_from_cell_tokens`): gene tokens without expression are
   encoded with the output cell tokens (prepended, or read by the gene transformer's
   cross-attention with cell-specific blocks) and decoded at a given depth.

Attribute names are the original's (``gene_encoder``, ``pos_encoder``, ``expr_encoder``,
``class_encoder``, ``metacell_encoder``, ``transformer``, ``cell_transformer``, ``expr_decoder``,
``cls_decoders``, ``mvc_decoder``, ``compressor``), so a scPRINT-2 checkpoint's state dict loads
unchanged (:mod:`scprint.checkpoints.scprint2`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import VAE_MIN_DIM, ScPrint2Config
from .decoders import ClsDecoder, ExprDecoder, MVCDecoder
from .fsq import FSQ
from .metacell import NeighbourExpressionEncoder
from .scprint import ScPrintOutput
from .tokens import (
    CategoryValueEncoder,
    ContinuousValueEncoder,
    GeneEncoder,
    PositionalEncoding,
    normalise_counts,
    reduce_gene_table,
)
from .transformer import Transformer
from .vae import VAECompressor, kl_divergence

#: Name of the base cell token (the original's ``"other"`` embedding; ``"default"`` compressor).
BASE = "base"
#: ``compress_class_dim`` key of the base token's compressor.
BASE_COMPRESSOR = "default"


@dataclass
class ScPrint2Output(ScPrintOutput):
    """A scPRINT-2 forward pass (``B`` cells, ``L`` genes, ``C`` cell tokens of width ``c``).

    The fields of :class:`~scprint.model.ScPrintOutput` mean (original names in brackets):
    ``cell_tokens`` ``(B, C, c)`` the *output* cell tokens, through their compressors
    [``output_cell_embs``]; ``cell_embedding`` the original's cell embedding
    [``output_cell_emb``]: the codes of all tokens concatenated ``(B, sum of code widths)`` with
    compressors, else the mean of the output tokens ``(B, c)``; ``class_embeddings`` class ->
    its code (compressors) or its output token, what the original's ``Embedder`` writes per class;
    ``gene_embeddings`` ``(B, L, d)`` [``gene_embedding``]; ``qk`` per gene-transformer layer
    ``(q, k)`` each ``(B, heads, C' + L, head_dim)`` with ``C' = ScPrint2.qk_cell_tokens``.

    Attributes:
        input_cell_tokens: ``(B, C, c)`` cell tokens out of the transformer(s), before the
            compressors [``input_cell_embs``]; their mean is [``input_cell_emb``].
        cell_codes: token name (``"base"`` and the label classes) -> ``(B, n)`` its code
            [``compressed_cell_embs``], or ``None`` without compressors. A VAE class's code is
            its mean; an FSQ class's the projection before rounding; the base token's is the
            VAE's hidden layer or the FSQ output token with a ``"default"`` compressor, the token
            itself without one (as the original).
        vae_kl: sum over the VAE compressors of their KL divergence to ``N(0, 1)`` (a training
            term), or ``None`` without VAEs.
    """

    input_cell_tokens: torch.Tensor | None = None
    cell_codes: dict[str, torch.Tensor] | None = None
    vae_kl: torch.Tensor | None = None


class ScPrint2(nn.Module):
    """scPRINT-2 (see the module docstring).

    Args:
        config: sizes and choices (:class:`~scprint.model.ScPrint2Config`).
        n_genes: vocabulary size (every organism's genes, one after the other).
        label_sizes: label class -> number of labels its classifier scores, in cell-token order.
        gene_positions: ``(n_genes,)`` genomic position bins (``-1`` = unknown) to tabulate the
            position encoding from; with ``config.use_positions`` and no positions, the table is
            left empty for a checkpoint to fill.
        gene_embedding_init: optional precomputed ``(n_genes, dim)`` gene table, reduced to
            ``d_model`` by adaptive average pooling.
    """

    def __init__(
        self,
        config: ScPrint2Config,
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
        self.cell_token_index = {BASE: 0, **{n: 1 + i for i, n in enumerate(self.label_classes)}}
        self.n_cell_tokens = len(self.cell_token_index)
        d, cell_dim = config.d_model, config.cell_dim

        table = None
        if gene_embedding_init is not None:
            table = reduce_gene_table(torch.as_tensor(gene_embedding_init), d)
        genes = GeneEncoder(n_genes, d, table, freeze=config.freeze_gene_embeddings)
        if config.gene_adapter:
            genes = nn.Sequential(genes, nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.gene_encoder = genes
        self.pos_encoder = None
        if config.use_positions:
            if gene_positions is not None:
                if tuple(gene_positions.shape) != (n_genes,):
                    raise ValueError(
                        f"gene_positions must have shape ({n_genes},), got {tuple(gene_positions.shape)}"
                    )
                self.pos_encoder = PositionalEncoding(d, gene_positions)
            else:
                self.pos_encoder = PositionalEncoding.from_table(torch.zeros(n_genes, 1, d))
        if config.expression_encoder == "metacell":
            self.expr_encoder = NeighbourExpressionEncoder(
                d, config.expr_encoder_layers, config.dropout
            )
        else:
            self.expr_encoder = ContinuousValueEncoder(
                d, config.dropout, layers=config.expr_encoder_layers
            )
        self.class_encoder = CategoryValueEncoder(self.n_cell_tokens, cell_dim)
        if config.metacell_token:
            self.metacell_encoder = CategoryValueEncoder(2, d)
        blocks = (config.mlp_ratio, config.dropout)
        self.transformer = Transformer(
            d,
            config.n_layers,
            config.n_heads,
            config.n_heads_kv,
            *blocks,
            context_dim=cell_dim if config.cell_specific_blocks else None,
        )
        self.cell_transformer = None
        if config.cell_specific_blocks:
            self.cell_transformer = Transformer(
                cell_dim,
                config.n_layers_cell,
                config.n_heads_cell,
                config.n_heads_kv_cell,
                *blocks,
                context_dim=d,
            )
        self.expr_decoder = ExprDecoder(d, config.dropout, zinb=config.zinb, use_depth=True)
        sizes = config.compress_class_dim or {}
        if config.compress_class_dim is not None:
            missing = sorted(set(self.label_classes) - set(sizes))
            if missing:
                raise ValueError(
                    f"compress_class_dim must size every label class; missing {missing}"
                )
        self.cls_decoders = nn.ModuleDict(
            {
                name: ClsDecoder(
                    sizes.get(name, cell_dim), n, config.classifier_layers, config.dropout
                )
                for name, n in label_sizes.items()
            }
        )
        self.mvc_decoder = None
        if config.mvc_decoder:
            self.mvc_decoder = MVCDecoder(d, config.mvc_decoder, zinb=config.zinb, use_depth=True)
        self.compressor = None
        if config.compress_class_dim is not None:
            self.compressor = nn.ModuleDict(
                {
                    name: VAECompressor(cell_dim, size, config.dropout)
                    if size >= VAE_MIN_DIM
                    else FSQ([2] * size, cell_dim)
                    for name, size in sizes.items()
                }
            )
        self._init_weights()
        #: tokens before the genes in the sequences whose queries/keys ``forward`` returns: the
        #: cell tokens (unless they have their own transformer), then the metacell token
        self.qk_cell_tokens = (0 if config.cell_specific_blocks else self.n_cell_tokens) + int(
            config.metacell_token
        )

    def _init_weights(self) -> None:
        """The original's initialisation: linear weights ``N(0, 0.02)`` (attention output and MLP
        ``fc2`` projections scaled by ``1/sqrt(2 n_layers)``), zero biases, classifier biases -0.13."""
        std = 0.02
        scaled = std / math.sqrt(2 * self.config.n_layers)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in self.modules():
            for name in ("out_proj", "fc2"):
                child = getattr(module, name, None)
                if isinstance(child, nn.Linear):
                    nn.init.normal_(child.weight, std=scaled)
        for decoder in self.cls_decoders.values():
            nn.init.constant_(decoder.out_layer.bias, -0.13)

    @property
    def uses_neighbours(self) -> bool:
        """Whether the expression encoder reads the cell's nearest neighbours (``metacell``)."""
        return self.config.expression_encoder == "metacell"

    @property
    def gene_table(self) -> nn.Embedding:
        """The gene identity table (under the adapter when there is one)."""
        encoder = self.gene_encoder[0] if self.config.gene_adapter else self.gene_encoder
        return encoder.embeddings

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
        if depth is None or depth.shape != (gene_ids.shape[0],):
            shape = None if depth is None else tuple(depth.shape)
            raise ValueError(
                f"depth must be (batch,) = ({gene_ids.shape[0]},) total counts (scPRINT-2's "
                f"decoder reads it), got {shape}"
            )
        if gene_ids.numel() and int(gene_ids.max()) >= self.n_genes:
            raise ValueError(
                f"gene_ids holds index {int(gene_ids.max())} but the vocabulary has {self.n_genes} genes "
                "(valid: 0..n_genes-1, and -1 for padding)"
            )

    def gene_tokens(self, gene_ids: torch.Tensor) -> torch.Tensor:
        """Identity (+ genomic position) tokens ``(B, L, d)`` of ``gene_ids`` (-1 = padding)."""
        index = gene_ids.clamp_min(0)
        tokens = self.gene_encoder(index)
        if self.pos_encoder is not None:
            tokens = tokens + self.pos_encoder(index)
        return tokens

    def input_cell_tokens(self, batch: int, device: torch.device) -> torch.Tensor:
        """The learned cell tokens ``(batch, C, c)`` (base, then one per label class)."""
        index = torch.arange(self.n_cell_tokens, device=device).repeat(batch, 1)
        return self.class_encoder(index)

    def _with_metacell_token(
        self, genes: torch.Tensor, padding: torch.Tensor, metacell: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the metacell token (when the model has one) to ``(B, L, d)`` gene tokens."""
        if not self.config.metacell_token:
            return genes, padding
        if metacell is None:
            metacell = torch.zeros(genes.shape[0], device=genes.device)
        token = self.metacell_encoder(metacell).unsqueeze(1).to(genes.dtype)
        flag = torch.zeros(padding.shape[0], 1, dtype=torch.bool, device=padding.device)
        return torch.cat([token, genes], dim=1), torch.cat([flag, padding], dim=1)

    def _normalise_neighbours(
        self, neighbours: torch.Tensor, padding: torch.Tensor
    ) -> torch.Tensor:
        """``(B, K, L)`` neighbour counts -> normalised expression, each neighbour on its own.

        ``"log"`` is the original's ``log2(1 + counts)``. For ``"sum"`` the original divides
        ``(B, K, L)`` by a ``(B, 1, K)`` total, which fails unless ``K`` is 1 or ``L``; here each
        neighbour's counts are divided by its own total over the context, what that line means.
        """
        neighbours = neighbours.float().masked_fill(padding[:, None, :], 0.0)
        if self.config.normalisation == "log":
            return torch.log2(1 + neighbours)
        total = neighbours.sum(-1, keepdim=True)
        return neighbours / torch.where(total > 0, total, torch.ones_like(total))

    # ------------------------------------------------------------------------------- read-outs
    def compress(
        self, cell_tokens: torch.Tensor, sample_latent: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None, torch.Tensor | None]:
        """Pass cell tokens ``(B, C, c)`` through their compressors.

        Returns the output tokens ``(B, C, c)``, the codes (see :class:`ScPrint2Output`) and the
        summed VAE KL divergence; without compressors ``(cell_tokens, None, None)``.
        ``sample_latent``: VAE tokens are decoded from a draw (the original's behaviour, torch's
        global generator, base token first then the classes in order), else from the mean.
        """
        if self.compressor is None:
            return cell_tokens, None, None
        tokens: list[torch.Tensor] = []
        codes: dict[str, torch.Tensor] = {}
        kl = None
        for name, index in self.cell_token_index.items():
            token = cell_tokens[:, index]
            key = BASE_COMPRESSOR if name == BASE else name
            if key not in self.compressor:  # the base token without a "default" compressor
                tokens.append(token)
                codes[name] = token
                continue
            compressor = self.compressor[key]
            if isinstance(compressor, VAECompressor):
                decoded, mu, log_var, hidden = compressor(token, sample=sample_latent)
                term = kl_divergence(mu, log_var)
                kl = term if kl is None else kl + term
                tokens.append(decoded)
                codes[name] = hidden if name == BASE else mu
            else:
                code = compressor.encode(token)
                decoded = compressor.decode(code)
                tokens.append(decoded)
                codes[name] = decoded if name == BASE else code
        return torch.stack(tokens, dim=1), codes, kl

    def tokens_from_codes(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Output cell tokens ``(B, c)`` decoded from label-class codes ``(B, n)`` (a VAE's mean
        or latent, an FSQ projection, rounded here): what a counterfactual swaps in.

        Raises ``ValueError`` for a class without a compressor or a code of the wrong width.
        """
        if self.compressor is None:
            raise ValueError("this model has no compressors (compress_class_dim is None)")
        out = {}
        for name, code in codes.items():
            if name not in self.label_classes or name not in self.compressor:
                raise ValueError(
                    f"no compressor for {name!r}; label classes with one: {self.label_classes}"
                )
            compressor = self.compressor[name]
            width = (
                compressor.latent_dim
                if isinstance(compressor, VAECompressor)
                else compressor.codebook_dim
            )
            if code.shape[-1] != width:
                raise ValueError(
                    f"code of {name!r} must be (..., {width}), got {tuple(code.shape)}"
                )
            out[name] = compressor.decode(code)
        return out

    def _cell_read_out(
        self, cells: torch.Tensor, sample_latent: bool
    ) -> tuple[
        torch.Tensor,
        dict[str, torch.Tensor] | None,
        torch.Tensor | None,
        torch.Tensor,
        dict[str, torch.Tensor],
        dict[str, torch.Tensor],
    ]:
        outputs, codes, kl = self.compress(cells, sample_latent)
        if codes is None:
            embedding = outputs.mean(dim=1)
            per_class = {n: outputs[:, self.cell_token_index[n]] for n in self.label_classes}
        else:
            embedding = torch.cat([codes[name] for name in self.cell_token_index], dim=1)
            per_class = {n: codes[n] for n in self.label_classes}
        logits = {
            name: self.cls_decoders[name](
                codes[name] if codes is not None else cells[:, self.cell_token_index[name]]
            )
            for name in self.label_classes
        }
        return outputs, codes, kl, embedding, per_class, logits

    def class_embedding(self, output: ScPrintOutput, classes: list[str]) -> torch.Tensor:
        """The embedding of some cell tokens, as the original's ``Embedder(pred_embedding=
        classes)`` writes it: their codes concatenated (compressors), else the mean of their
        output tokens."""
        unknown = [c for c in classes if c not in self.cell_token_index]
        if unknown or not classes:
            raise ValueError(
                f"classes must be a non-empty subset of {list(self.cell_token_index)}, got {classes}"
            )
        if isinstance(output, ScPrint2Output) and output.cell_codes is not None:
            return torch.cat([output.cell_codes[c] for c in classes], dim=1)
        positions = [self.cell_token_index[c] for c in classes]
        return output.cell_tokens[:, positions].mean(dim=1)

    # ---------------------------------------------------------------------------------- forward
    def forward(
        self,
        gene_ids: torch.Tensor,
        counts: torch.Tensor,
        depth: torch.Tensor,
        target_depth: torch.Tensor | None = None,
        return_qk: bool = False,
        mask: torch.Tensor | None = None,
        return_mvc: bool = False,
        neighbours: torch.Tensor | None = None,
        neighbour_distances: torch.Tensor | None = None,
        metacell: torch.Tensor | None = None,
        sample_latent: bool | None = None,
        cells_only: bool = False,
    ) -> ScPrint2Output:
        """Encode cells and read them out.

        Args:
            gene_ids: ``(B, L)`` long vocabulary indices, ``-1`` = padding.
            counts: ``(B, L)`` raw counts of those genes.
            depth: ``(B,)`` depth the decoders read as ``log2(1 + depth)`` (the original's
                ``req_depth``): each cell's total counts, times ``k`` to denoise at ``k`` times
                the depth.
            target_depth: ``(B,)`` library size the ZINB means sum to over the context; default
                ``counts.sum(1)`` (the original's ``depth_mult``).
            return_qk: also return each gene-transformer layer's queries and keys.
            mask: ``(B, L)`` bool, True where the expression is hidden from the model.
            return_mvc: also run the MVC decoder (requires one).
            neighbours: ``(B, K, L)`` raw counts of the same genes in each cell's ``K`` nearest
                neighbours (``metacell`` models; ``None``: the neighbour half of the expression
                token is zeros, the original's behaviour without neighbours).
            neighbour_distances: ``(B, K)`` their distances (with ``neighbours``).
            metacell: ``(B,)`` 1 for metacell inputs, 0 for cells (default 0; models with a
                metacell token).
            sample_latent: decode VAE compressors from a draw (``None``: in training mode only;
                ``True`` reproduces the original, which draws in evaluation too).
            cells_only: only the cell tokens' read-outs (``cell_tokens``, ``cell_embedding``,
                ``class_embeddings``, ``logits``, ``input_cell_tokens``, ``cell_codes``), equal
                to a full pass's, with less arithmetic: the expression decoder is skipped, and
                without cell-specific blocks the last block computes queries, out-projection,
                MLP and final norm for the cell tokens alone (keys and values still from every
                gene). With cell-specific blocks every gene output is the cell transformer's
                context, so only the decoder is skipped. ``gene_embeddings`` and ``zinb_*`` are
                ``None``.
        """
        self._check_inputs(gene_ids, depth, counts)
        if cells_only and (return_qk or return_mvc):
            raise ValueError("cells_only skips the gene tokens that return_qk/return_mvc need")
        padding = gene_ids < 0
        counts = counts.float().masked_fill(padding, 0.0)
        expression = normalise_counts(counts, self.config.normalisation)
        index = gene_ids.clamp_min(0)
        identity = self.gene_encoder(index)
        if self.uses_neighbours:
            neighbour_expression = None
            if neighbours is not None:
                if neighbours.dim() != 3 or neighbours.shape[::2] != gene_ids.shape:
                    raise ValueError(
                        f"neighbours must be (batch, K, genes) = ({gene_ids.shape[0]}, K, "
                        f"{gene_ids.shape[1]}), got {tuple(neighbours.shape)}"
                    )
                neighbour_expression = self._normalise_neighbours(neighbours, padding)
            encoded = self.expr_encoder(expression, neighbour_expression, neighbour_distances, mask)
        elif neighbours is not None:
            raise ValueError("this model's expression encoder reads no neighbours (continuous)")
        else:
            encoded = self.expr_encoder(expression, mask)
        genes = identity + encoded
        if self.pos_encoder is not None:
            genes = genes + self.pos_encoder(index)
        genes, gene_padding = self._with_metacell_token(genes, padding, metacell)
        cell_inputs = self.input_cell_tokens(gene_ids.shape[0], gene_ids.device).to(genes.dtype)
        if self.cell_transformer is None:
            sequence = torch.cat([cell_inputs, genes], dim=1)
            cell_flags = torch.zeros(
                padding.shape[0], self.n_cell_tokens, dtype=torch.bool, device=padding.device
            )
            hidden, qk = self.transformer(
                sequence,
                torch.cat([cell_flags, gene_padding], dim=1),
                return_qk,
                outputs=self.n_cell_tokens if cells_only else None,
            )
            cells, gene_out = hidden[:, : self.n_cell_tokens], hidden[:, self.n_cell_tokens :]
        else:
            gene_out, qk = self.transformer(genes, gene_padding, return_qk)
            cells, _ = self.cell_transformer(
                cell_inputs, None, context=gene_out, context_padding=gene_padding
            )
        library_size = counts.sum(1) if target_depth is None else target_depth
        log_depth = torch.log2(1 + depth.float())
        expr: dict[str, torch.Tensor] = {}
        mean = None
        if cells_only:
            gene_out = None
        else:
            gene_out = gene_out[:, int(self.config.metacell_token) :]
            expr = self.expr_decoder(gene_out, padding, log_depth)
            mean = library_size.unsqueeze(1).to(expr["mean"].dtype) * expr["mean"]
        sample = self.training if sample_latent is None else sample_latent
        outputs, codes, kl, embedding, per_class, logits = self._cell_read_out(cells, sample)
        mvc = None
        if return_mvc:
            if self.mvc_decoder is None:
                raise ValueError("this model has no MVC decoder (config.mvc_decoder is None)")
            mvc = self.mvc_decoder(cells.mean(dim=1), identity, padding, log_depth)
            mvc["mean"] = library_size.unsqueeze(1).to(mvc["mean"].dtype) * mvc["mean"]
        return ScPrint2Output(
            cell_tokens=outputs,
            cell_embedding=embedding,
            class_embeddings=per_class,
            gene_embeddings=gene_out,
            zinb_mean=mean,
            zinb_dispersion=expr.get("disp"),
            zinb_dropout_logit=expr.get("zero_logits"),
            logits=logits,
            qk=qk,
            mvc=mvc,
            input_cell_tokens=cells,
            cell_codes=codes,
            vae_kl=kl,
        )

    def decode_from_cell_tokens(
        self,
        cell_tokens: torch.Tensor,
        gene_ids: torch.Tensor,
        target_depth: torch.Tensor,
        depth: torch.Tensor | None = None,
        metacell: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Generation: expression of ``gene_ids`` from cell tokens alone (the original's ``_generate``).

        Args:
            cell_tokens: ``(B, C, c)`` output cell tokens (e.g. :attr:`ScPrint2Output.cell_tokens`,
                some replaced for a counterfactual).
            gene_ids: ``(B, L)`` long vocabulary indices of the genes to generate, ``-1`` = padding.
            target_depth: ``(B,)`` library size the generated means sum to over the context.
            depth: ``(B,)`` depth the decoder reads (required: scPRINT-2 always reads it).
            metacell: ``(B,)`` metacell flags (models with a metacell token).

        Returns:
            ``{"mean", "dispersion", "dropout_logit"}`` each ``(B, L)`` (the last two with ZINB)
            and ``"cell_tokens"`` ``(B, C, c)``: re-encoded by the transformer without
            cell-specific blocks, the given ones with them.
        """
        self._check_inputs(gene_ids, depth, None)
        expected = (self.n_cell_tokens, self.config.cell_dim)
        if cell_tokens.dim() != 3 or tuple(cell_tokens.shape[1:]) != expected:
            raise ValueError(
                f"cell_tokens must be (batch, {expected[0]}, {expected[1]}), got {tuple(cell_tokens.shape)}"
            )
        if target_depth.shape != (gene_ids.shape[0],):
            raise ValueError(
                f"target_depth must be (batch,) = ({gene_ids.shape[0]},), got {tuple(target_depth.shape)}"
            )
        padding = gene_ids < 0
        genes = self.gene_tokens(gene_ids).to(cell_tokens.dtype)
        genes, gene_padding = self._with_metacell_token(genes, padding, metacell)
        if self.cell_transformer is None:
            flags = torch.zeros(
                padding.shape[0], self.n_cell_tokens, dtype=torch.bool, device=padding.device
            )
            hidden, _ = self.transformer(
                torch.cat([cell_tokens, genes], dim=1), torch.cat([flags, gene_padding], dim=1)
            )
            cells, gene_out = hidden[:, : self.n_cell_tokens], hidden[:, self.n_cell_tokens :]
        else:
            gene_out, _ = self.transformer(genes, gene_padding, context=cell_tokens)
            cells = cell_tokens
        gene_out = gene_out[:, int(self.config.metacell_token) :]
        expr = self.expr_decoder(gene_out, padding, torch.log2(1 + depth.float()))
        out = {
            "mean": target_depth.unsqueeze(1).to(expr["mean"].dtype) * expr["mean"],
            "cell_tokens": cells,
        }
        if self.config.zinb:
            out["dispersion"] = expr["disp"]
            out["dropout_logit"] = expr["zero_logits"]
        return out
