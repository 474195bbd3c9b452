"""scPRINT as pure ``torch.nn.Module`` s: tokens, transformer, decoders, FSQ, losses and the model.

Nothing here knows AnnData or Lightning. The network is the original scPRINT's (releases 1.6.x
and 2.x), module for module, so ``scprint.load`` maps an original checkpoint onto it weight for
weight. Public API (used by ``scprint.tasks`` and ``scprint.training``):

- ``ScPrint(config, n_genes, label_sizes=None, gene_positions=None, gene_embedding_init=None)``.
- ``ScPrint.forward(gene_ids, counts, depth, target_depth=None, return_qk=False, mask=None,
  return_mvc=False) -> ScPrintOutput`` with ``gene_ids`` ``(B, L)`` long (``-1`` = padding),
  ``counts`` ``(B, L)`` raw counts, ``depth`` ``(B,)`` total counts of each cell (depth token),
  ``target_depth`` ``(B,)`` the library size the ZINB means sum to over the context (default
  ``counts.sum(1)``, the original's ``depth_mult``), ``mask`` ``(B, L)`` bool (True = expression
  hidden).
- ``ScPrintOutput``: ``cell_tokens (B, C, d)``, ``cell_embedding (B, d)`` (mean of the class
  tokens), ``class_embeddings``, ``gene_embeddings (B, L, d)``, ``zinb_mean``,
  ``zinb_dispersion``, ``zinb_dropout_logit`` (``(B, L)``; the last two ``None`` without ZINB),
  ``logits`` (class -> ``(B, n_leaf_labels)``), ``qk`` (per layer ``(q, k)`` each
  ``(B, heads, C + L, head_dim)``), ``mvc``.
- ``ScPrint.cell_token_index``: ``{"depth": 0, "base": 1, <class>: 2 + i}`` for 2.x models,
  ``{"base": 0, "depth": 1, ...}`` for 1.x, ``{"base": 0, <class>: 1 + i}`` when the depth is
  read by the decoder; ``ScPrint.n_cell_tokens``; ``ScPrint.label_classes``.
- ``ScPrint.decode_from_cell_tokens(cell_tokens, gene_ids, target_depth, depth=None)`` ->
  ``{"mean", "dispersion", "dropout_logit", "cell_tokens", "logits"}`` (bottleneck generation).
- ``ScPrint.input_cell_tokens(depth)``, ``ScPrint.gene_tokens(gene_ids)``,
  ``ScPrint.cell_embedding(cell_tokens)``.

Details:

- ``ScPrintOutput.logits[c]`` are over the *leaf* labels of class ``c`` (``LabelEncoder.classes``);
  a coarse label's probability is the sum over ``LabelEncoder.descendant_leaves(label)``.
- Gene contexts (``scprint.data``): by default the expressed genes of a cell enter its context
  with probability proportional to their count (``gene_sampling="weighted"``, our option);
  uniform choice among expressed genes (the original's) is ``gene_sampling="random"``. A
  checkpoint records its choice in ``Pretrained.sampling``.
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
