"""Losses on the relaxed-code similarity ``s(u, i) = <h_u, h_i> / B`` (each weighted by the caller).

Logits are ``s / tau`` with a learnable temperature ``tau``. Candidate columns of a row are
``[positive, in-batch items..., sampled negatives...]``; ``mask`` marks columns that must
not count as negatives (accidental hits: the row's own positive appearing again).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = -1e9


def relax(z: torch.Tensor, beta: float, mode: str = "tanh") -> torch.Tensor:
    """Relaxed codes: ``tanh(beta z)``, or a straight-through sign (forward sign, tanh gradient)."""
    h = torch.tanh(beta * z)
    if mode == "ste":
        return h + (torch.where(z > 0, 1.0, -1.0) - h).detach()
    if mode != "tanh":
        raise ValueError(f"relaxation must be 'tanh' or 'ste', got {mode!r}")
    return h


def candidate_logits(hu: torch.Tensor, hpos: torch.Tensor, hcand: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(b, 1 + C)`` logits ``scale * <h_u, h_j>``: column 0 the row's positive, then each candidate.

    With ``scale = 1 / (B * tau)`` these are ``s(u, j) / tau``; the scale is applied to the small
    ``(b, B)`` factor so the large matrix takes a single pass."""
    q = hu * scale
    return torch.cat([(q * hpos).sum(dim=1, keepdim=True), q @ hcand.T], dim=1)


def mask_hits_(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """In place: candidate columns ``cols`` (0-based over the candidates) of ``rows`` can never win."""
    if len(rows):
        logits.index_put_((rows, cols + 1), torch.tensor(NEG_INF, dtype=logits.dtype, device=logits.device))
    return logits


def sampled_softmax(log_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the positive (column 0) given log-softmax of the (masked, logQ-corrected) logits."""
    return -log_probs[:, 0].mean()


def bpr(logits: torch.Tensor, hit_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise BPR on ``s / tau``: mean of ``-log sigmoid(l_pos - l_neg)`` over the negatives
    (masked accidental hits sit at -1e9 and contribute ~0 loss; ``hit_mask`` drops them from the mean)."""
    diff = logits[:, :1] - logits[:, 1:]
    loss = -F.logsigmoid(diff)
    if hit_mask is None:
        return loss.mean()
    keep = (~hit_mask).float()
    return (loss * keep).sum() / keep.sum().clamp_min(1.0)


def teacher_distribution(teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, sum p log p per row)`` of the teacher's softmax over the candidate columns (no gradient)."""
    with torch.no_grad():
        logp = F.log_softmax(teacher_logits, dim=1)
        p = logp.exp()
        return p, (p * logp.clamp_min(NEG_INF)).sum(dim=1)


def distillation(student_log_probs: torch.Tensor, p: torch.Tensor, p_entropy: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the same candidate columns: ``sum p log p - sum p log q``."""
    return (p_entropy - (p * student_log_probs).sum(dim=1)).mean()


def quantization(h: torch.Tensor) -> torch.Tensor:
    """``mean((|h| - 1)^2)``: pulls relaxed codes to the corners of the hypercube."""
    return (h.abs() - 1.0).square().mean()


def bit_balance(h: torch.Tensor) -> torch.Tensor:
    """Mean squared bit mean: each bit should split the batch in half."""
    return h.mean(dim=0).square().mean()


def decorrelation(h: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal entry of ``h^T h / n``: bits should be uncorrelated."""
    n, bits = h.shape
    c = h.T @ h / n
    off = c - torch.diag(torch.diagonal(c))
    return off.square().sum() / (bits * (bits - 1))
