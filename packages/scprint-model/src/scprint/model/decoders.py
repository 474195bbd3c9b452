"""Read-outs: the ZINB expression decoder, the label classifiers and the cell-embedding (MVC) decoder.

Names follow the original scPRINT so its checkpoints load weight for weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _masked_softmax(logits: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    if padding is not None:
        logits = logits.masked_fill(padding, float("-inf"))
    return F.softmax(logits, dim=-1)


def _with_depth(tokens: torch.Tensor, log_depth: torch.Tensor) -> torch.Tensor:
    """``(B, L, d)`` tokens with ``log_depth`` ``(B,)`` appended to each: ``(B, L, d + 1)``."""
    depth = log_depth[:, None, None].expand(-1, tokens.shape[1], 1).to(tokens.dtype)
    return torch.cat([tokens, depth], -1)


class ExprDecoder(nn.Module):
    """Gene tokens -> ZINB parameters of each context gene.

    ``fc``: ``Linear(d [+1], d), LayerNorm, LeakyReLU, Dropout, Linear(d, d), LayerNorm,
    LeakyReLU``; ``pred_var_zero``: ``Linear(d, 3)`` (``1`` without ZINB). The mean logits are
    soft-maxed over the context genes (the caller scales them by the library size), the
    dispersion is ``exp(min(., 15))``. With ``use_depth`` each token also reads ``log2(1 + depth)``.
    """

    def __init__(
        self, d_model: int, dropout: float = 0.1, zinb: bool = True, use_depth: bool = False
    ) -> None:
        super().__init__()
        self.use_depth = use_depth
        self.zinb = zinb
        self.fc = nn.Sequential(
            nn.Linear(d_model + 1 if use_depth else d_model, d_model),
            nn.LayerNorm(d_model),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_model, d_model),
            nn.LayerNorm(d_model),
            nn.LeakyReLU(),
        )
        self.pred_var_zero = nn.Linear(d_model, 3 if zinb else 1)

    def forward(
        self,
        gene_tokens: torch.Tensor,
        padding: torch.Tensor | None = None,
        log_depth: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``gene_tokens`` ``(B, L, d)``, ``log_depth`` ``(B,)`` when ``use_depth``.

        Returns ``{"mean"}`` (fractions summing to 1 over the context) and, with ZINB,
        ``"disp"`` and ``"zero_logits"``; each ``(B, L)``.
        """
        x = gene_tokens
        if self.use_depth:
            if log_depth is None:
                raise ValueError("this expression decoder reads the depth; pass log_depth (B,)")
            x = _with_depth(x, log_depth)
        out = self.pred_var_zero(self.fc(x)).float()  # read-outs in float32 under autocast
        if not self.zinb:
            return {"mean": _masked_softmax(out.squeeze(-1), padding)}
        mean, var, zero = out.unbind(-1)
        return {
            "mean": _masked_softmax(mean, padding),
            "disp": torch.exp(torch.clamp(var, max=15)),
            "zero_logits": zero,
        }


class ClsDecoder(nn.Module):
    """A class token -> logits over the labels of that class.

    ``decoder``: per hidden width ``Linear, LayerNorm, ReLU, Dropout``; then ``out_layer``.
    """

    def __init__(
        self, d_model: int, n_labels: int, layers: list[int] | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__()
        widths = [d_model, *(layers or [])]
        self.decoder = nn.Sequential()
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            self.decoder.extend(
                [
                    nn.Linear(width_in, width_out),
                    nn.LayerNorm(width_out),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                ]
            )
        self.out_layer = nn.Linear(widths[-1], n_labels)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` -> ``(B, n_labels)``."""
        return self.out_layer(self.decoder(token)).float()


class MVCDecoder(nn.Module):
    """Expression of each context gene from the cell embedding and the gene identity tokens.

    ``"inner product"``: queries ``sigmoid(LN(gene2query(g)))`` projected to three ``d``-vectors
    whose inner products with the cell embedding give the mean logit, dispersion and zero logit;
    ``"concat query"`` / ``"sum query"``: an MLP on ``[cell, query]`` / ``cell + query``. With
    ``use_depth`` (scPRINT-2) each gene token also reads ``log2(1 + depth)`` before ``gene2query``.
    """

    def __init__(
        self,
        d_model: int,
        arch_style: str = "inner product",
        zinb: bool = True,
        use_depth: bool = False,
    ) -> None:
        super().__init__()
        self.arch_style = arch_style
        self.zinb = zinb
        self.d_model = d_model
        self.use_depth = use_depth
        outputs = 3 if zinb else 1
        self.gene2query = nn.Linear(d_model + 1 if use_depth else d_model, d_model)
        self.query_activation = nn.Sigmoid()
        if arch_style == "inner product":
            self.norm = nn.LayerNorm(d_model)
            self.pred_var_zero = nn.Linear(d_model, d_model * outputs, bias=False)
        elif arch_style == "concat query":
            self.fc1 = nn.Linear(d_model * 2, d_model // 2)
            self.hidden_activation = nn.PReLU()
            self.fc2 = nn.Linear(d_model // 2, outputs)
        elif arch_style == "sum query":
            self.fc1 = nn.Linear(d_model, 64)
            self.hidden_activation = nn.PReLU()
            self.fc2 = nn.Linear(64, outputs)
        else:
            raise ValueError(
                f"unknown MVC decoder {arch_style!r}; expected 'inner product', 'concat query' or 'sum query'"
            )

    def forward(
        self,
        cell_embedding: torch.Tensor,
        gene_identity: torch.Tensor,
        padding: torch.Tensor | None = None,
        log_depth: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``cell_embedding`` ``(B, d)``, ``gene_identity`` ``(B, L, d)``, ``log_depth`` ``(B,)``
        (with ``use_depth``) -> ``{"mean", "disp", "zero_logits"}`` each ``(B, L)`` (means sum
        to 1 over the context)."""
        if self.use_depth:
            if log_depth is None:
                raise ValueError("this MVC decoder reads the depth; pass log_depth (B,)")
            gene_identity = _with_depth(gene_identity, log_depth)
        if self.arch_style == "inner product":
            query = self.query_activation(self.norm(self.gene2query(gene_identity)))
            parts = self.pred_var_zero(query).split(self.d_model, dim=-1)
            cell = cell_embedding.unsqueeze(2).to(parts[0].dtype)
            values = [torch.bmm(p, cell).squeeze(2).float() for p in parts]
        else:
            query = self.query_activation(self.gene2query(gene_identity))
            if self.arch_style == "concat query":
                cell = cell_embedding.unsqueeze(1).expand(-1, gene_identity.shape[1], -1)
                hidden = self.hidden_activation(self.fc1(torch.cat([cell, query], dim=2)))
            else:
                hidden = self.hidden_activation(self.fc1(cell_embedding.unsqueeze(1) + query))
            values = list(self.fc2(hidden).float().unbind(-1))
        out = {"mean": _masked_softmax(values[0], padding)}
        if self.zinb:
            out["disp"] = torch.exp(torch.clamp(values[1], max=15))
            out["zero_logits"] = values[2]
        return out
