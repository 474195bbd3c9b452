"""scPRINT as pure ``torch.nn.Module`` s: tokens, transformers, decoders, compressors, the models.

Nothing here knows AnnData or Lightning. Two generations, each the original's network module for
module, so ``scprint.load`` maps an original checkpoint onto it weight for weight:

- scPRINT-1 (packages ``scprint`` 1.6.x and 2.x): :class:`ScPrint`, :class:`ModelConfig`;
- scPRINT-2 (package ``scprint2`` 1.0.x): :class:`ScPrint2`, :class:`ScPrint2Config`.

``build_network(config, n_genes, label_sizes, gene_positions)`` builds either from its config,
``config_from_dict(config.to_dict())`` reads either back (``ScPrint2Config.to_dict()`` carries
``"generation": 2``). Tasks and training use the common API below; what only scPRINT-2 has
follows it.

Common API (used by ``scprint.tasks`` and ``scprint.training``):

- ``forward(gene_ids, counts, depth, target_depth=None, return_qk=False, mask=None,
  return_mvc=False) -> ScPrintOutput`` with ``gene_ids`` ``(B, L)`` long (``-1`` = padding),
  ``counts`` ``(B, L)`` raw counts, ``depth`` ``(B,)`` total counts of each cell (the depth token
  of scPRINT-1, what scPRINT-2's decoders read as ``log2(1 + depth)``; ``k *`` depth denoises at
  ``k`` times the depth), ``target_depth`` ``(B,)`` the library size the ZINB means sum to over
  the context (default ``counts.sum(1)``, the original's ``depth_mult``), ``mask`` ``(B, L)``
  bool (True = expression hidden).
- ``ScPrintOutput``: ``cell_tokens (B, C, c)``, ``cell_embedding``, ``class_embeddings``
  (class -> ``(B, .)``), ``gene_embeddings (B, L, d)``, ``zinb_mean``, ``zinb_dispersion``,
  ``zinb_dropout_logit`` (``(B, L)``; the last two ``None`` without ZINB), ``logits`` (class ->
  ``(B, n_leaf_labels)``), ``qk`` (per gene-transformer layer ``(q, k)`` each
  ``(B, heads, qk_cell_tokens + L, head_dim)``), ``mvc``.
- ``cell_token_index`` (token name -> position in ``cell_tokens``), ``n_cell_tokens``,
  ``label_classes``, ``label_sizes``, ``qk_cell_tokens`` (tokens before the genes in ``qk``),
  ``cell_transformer`` (``None`` unless cell-specific blocks), ``mvc_decoder``, ``gene_table``
  (the ``nn.Embedding`` of gene identities), ``config.cell_dim`` (width of the cell tokens).
- ``decode_from_cell_tokens(cell_tokens, gene_ids, target_depth, depth=None)`` ->
  ``{"mean", "dispersion", "dropout_logit", "cell_tokens"}`` (+ ``"logits"`` for scPRINT-1):
  expression of any genes from cell tokens alone (generation; imputation of unmeasured genes).
- ``class_embedding(output, classes) -> (B, .)``: the embedding of some cell tokens (the mean
  of their tokens; for scPRINT-2 with compressors their codes side by side, as its ``Embedder``).
- ``gene_tokens(gene_ids)``: identity (+ position) tokens ``(B, L, d)``.

scPRINT-1 only: ``cell_token_index`` is ``{"depth": 0, "base": 1, <class>: 2 + i}`` (2.x),
``{"base": 0, "depth": 1, ...}`` (1.x) or ``{"base": 0, <class>: 1 + i}`` (depth read by the
decoder); ``cell_embedding`` is the mean of the class tokens; ``input_cell_tokens(depth)``,
``cell_embedding(cell_tokens)``.

scPRINT-2 (:mod:`.scprint2`; what the original's new tasks build on):

- ``ScPrint2.forward(..., neighbours=None, neighbour_distances=None, metacell=None,
  sample_latent=None) -> ScPrint2Output``. ``metacell`` models (``model.uses_neighbours``) read
  ``neighbours`` ``(B, K, L)``, the raw counts of the same genes in each cell's ``K = 6`` nearest
  cells, and their ``neighbour_distances`` ``(B, K)``: :func:`scprint.data.neighbours.neighbours_of`
  finds them in an AnnData (``obsp["distances"]`` if present, else the original's recipe: PCA of
  log1p counts per 10,000, 50 components, Euclidean) and ``scprint.tasks._batches``
  (``iter_model_batches`` + ``model_inputs(batch)``) puts their counts in every batch; without
  them the encoder reads zeros, as the original. ``sample_latent``: VAE compressors decode a
  draw (the original draws even in evaluation; ``True`` reproduces it from torch's global
  generator) or their mean (default in evaluation).
- ``ScPrint2Output`` adds ``input_cell_tokens (B, C, c)`` (the cell tokens out of the
  transformers, before the compressors: the cell transformer's outputs with cell-specific
  blocks) [``input_cell_embs``], ``cell_codes`` (token name -> ``(B, n)`` code: a VAE class's
  mean, an FSQ class's projection before rounding; ``None`` without compressors)
  [``compressed_cell_embs``] and ``vae_kl``. Its ``cell_tokens`` are the *output* tokens
  [``output_cell_embs``], ``cell_embedding`` is [``output_cell_emb``] (codes concatenated, or the
  mean of all tokens without compressors), ``class_embeddings`` the codes (or output tokens).
- ``ScPrint2.compress(cell_tokens, sample_latent=False) -> (output tokens, codes, kl)`` and
  ``ScPrint2.tokens_from_codes({class: code}) -> {class: (B, c) token}``: a counterfactual swaps
  a class's code, decodes it to a token, puts it in ``cell_tokens`` at
  ``cell_token_index[class]`` and calls ``decode_from_cell_tokens``.
- ``ScPrint2.cell_token_index`` is ``{"base": 0, <class>: 1 + i}`` (the base token is the
  original's ``"other"`` embedding, its compressor the ``"default"`` entry of
  ``compress_class_dim``); ``decode_from_cell_tokens`` needs ``depth`` (``metacell`` flags
  optional) and, with cell-specific blocks, the gene transformer reads the given tokens by
  cross-attention.

Details:

- ``ScPrintOutput.logits[c]`` are over the *leaf* labels of class ``c`` (``LabelEncoder.classes``);
  a coarse label's probability is the sum over ``LabelEncoder.descendant_leaves(label)``.
- Gene contexts (``scprint.data``): by default the expressed genes of a cell enter its context
  with probability proportional to their count (``gene_sampling="weighted"``, our option);
  uniform choice among expressed genes (the original's) is ``gene_sampling="random"``. A
  checkpoint records its choice in ``Pretrained.sampling``.
- Padding (``gene_ids == -1``) is ours: the originals never pad; padded genes are never
  attended to, in any transformer.
- ``scprint.load`` lives in ``scprint.checkpoints`` (it needs the vocabulary and label
  encoders of ``scprint.data``).
"""

from .config import ModelConfig, ScPrint2Config, config_from_dict
from .losses import disentanglement_loss, hierarchical_cross_entropy, zinb_nll
from .network import build_network
from .scprint import ScPrint, ScPrintOutput
from .scprint2 import ScPrint2, ScPrint2Output

__all__ = [
    "ModelConfig",
    "ScPrint",
    "ScPrint2",
    "ScPrint2Config",
    "ScPrint2Output",
    "ScPrintOutput",
    "build_network",
    "config_from_dict",
    "disentanglement_loss",
    "hierarchical_cross_entropy",
    "zinb_nll",
]
