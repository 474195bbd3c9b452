"""scPRINT as pure ``torch.nn.Module`` s: tokens, transformer, decoders, losses and the model.

Nothing here knows AnnData or Lightning. Contract for the tasks (``scprint.tasks``):

- ``ScPrint.forward(gene_ids, counts, depth, target_depth=None, return_qk=False) -> ScPrintOutput``
  with ``gene_ids`` ``(B, L)`` long (``-1`` = padding), ``counts`` ``(B, L)`` raw counts,
  ``depth`` ``(B,)`` total counts of each cell.
- ``ScPrint.label_classes``, ``ScPrint.cell_token_index`` (``{"base": 0, "depth": 1, <class>: 2 + i}``),
  ``ScPrint.n_cell_tokens``, ``ScPrint.decode_from_cell_tokens(cell_tokens, gene_ids, depth)``.

Details the contract left open:

- ZINB means: softmax over the context genes plus one "rest of the cell" logit (read from the base
  token) times ``target_depth``, so the means of the context genes sum to at most the depth.
- ``ScPrintOutput.logits[c]`` are over the *leaf* labels of class ``c`` (``LabelEncoder.classes``);
  a coarse label's probability is the sum over ``LabelEncoder.descendant_leaves(label)``.
- Gene contexts (``scprint.data``): by default the expressed genes of a cell enter its context
  with probability proportional to their count (``gene_sampling="weighted"``); uniform choice among
  expressed genes is ``gene_sampling="random"``. A checkpoint records its choice in
  ``Pretrained.sampling``; pass it to ``make_inference_batches(..., gene_sampling=...)``.
- ``load_pretrained`` lives in ``scprint.training.checkpoint`` (it needs the vocabulary and label
  encoders of ``scprint.data``) and is re-exported as ``scprint.load_pretrained``.
- ``zinb_mean``/``zinb_dispersion``/``zinb_dropout_logit`` and ``logits`` are float32 even under
  mixed precision.
"""

from .config import ModelConfig
from .losses import disentanglement_loss, hierarchical_cross_entropy, zinb_nll
from .scprint import ScPrint, ScPrintOutput

__all__ = [
    "ModelConfig",
    "ScPrint",
    "ScPrintOutput",
    "disentanglement_loss",
    "hierarchical_cross_entropy",
    "zinb_nll",
]
