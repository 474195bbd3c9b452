"""Fine-tuning: a checkpoint's network extended with new label classes and labels."""

from __future__ import annotations

import logging

import torch

from ..checkpoints import load
from ..data.ontology import LabelEncoder
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint, ScPrint2, build_network

log = logging.getLogger(__name__)

__all__ = ["fine_tuned_network"]


def fine_tuned_network(
    path: str, config: ModelConfig, vocab: Vocabulary, labels: dict[str, LabelEncoder]
) -> ScPrint | ScPrint2:
    """The network of checkpoint ``path`` (ours, scPRINT-1's or scPRINT-2's) with ``labels``'
    classes and labels added.

    ``labels`` starts with the checkpoint's classes, each keeping its leaves first (the data
    module extends them so). Tensors that grew (classifier outputs, class tokens) keep their
    trained rows; heads of new classes start from the usual initialisation.
    """
    pretrained = load(path, device="cpu")
    if pretrained.vocab.genes != vocab.genes:
        raise ValueError(
            f"init_from {path!r}: the data module's vocabulary is not the checkpoint's; "
            "give the same checkpoint as data.init_from (scprint fit links model.init_from to it)"
        )
    old = pretrained.labels
    if list(labels)[: len(old)] != list(old) or any(
        labels[n].classes[: len(e.classes)] != e.classes for n, e in old.items()
    ):
        raise ValueError(
            f"init_from {path!r}: label classes must start with the checkpoint's {list(old)}, "
            "each keeping its labels first"
        )
    settings = ("dropout", "max_len", "freeze_gene_embeddings")
    network = pretrained.config.replace(**{name: getattr(config, name) for name in settings})
    bits = network.compress_class_dim
    if bits is not None:
        new_bits = {n: max(bits.values()) for n in labels if n not in bits}
        network = network.replace(compress_class_dim={**bits, **new_bits})
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    sizes = {name: len(encoder.classes) for name, encoder in labels.items()}
    model = build_network(network, len(vocab), sizes, gene_positions=positions)
    state, trained = model.state_dict(), pretrained.model.state_dict()
    fresh = sorted(set(state) - set(trained))
    for key, tensor in trained.items():
        target = state[key]
        if tensor.shape == target.shape:
            state[key] = tensor
        elif tensor.dim() and tensor.shape[1:] == target.shape[1:] and len(tensor) < len(target):
            target[: len(tensor)] = tensor
        else:
            raise ValueError(f"init_from {path!r}: tensor {key!r} does not fit the network")
    model.load_state_dict(state)
    model.gene_table.weight.requires_grad_(not network.freeze_gene_embeddings)
    log.info(
        "fine-tuning %s: labels %s, %d new tensors (e.g. %s)",
        path,
        {n: len(e.classes) for n, e in labels.items()},
        len(fresh),
        fresh[:3],
    )
    return model
