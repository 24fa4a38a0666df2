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
        lse = torch.logsumexp(teacher_logits, dim=1)
        p = torch.exp(teacher_logits - lse[:, None])
        return p, torch.linalg.vecdot(p, teacher_logits) - lse


def distillation(student_log_probs: torch.Tensor, p: torch.Tensor, p_entropy: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the same candidate columns: ``sum p log p - sum p log q``."""
    return (p_entropy - (p * student_log_probs).sum(dim=1)).mean()


class _SoftmaxDistill(torch.autograd.Function):
    """Fused ``(CE of column 0, KL(p || softmax(logits)))`` over the same columns: one
    log-sum-exp forward, and the closed-form gradient ``(g_ce + g_kl) q - g_kl p - g_ce e_0``
    (per row, over ``b``; ``q`` the student softmax) backward, instead of autograd through
    log_softmax, products and sums of the ``(b, 1 + C)`` matrix."""

    @staticmethod
    def forward(ctx, logits, p, p_entropy):
        lse = torch.logsumexp(logits, dim=1)
        q = torch.exp(logits - lse[:, None])
        ce = (lse - logits[:, 0]).mean()
        kl = (p_entropy + lse - torch.linalg.vecdot(p, logits)).mean() if p is not None else ce.new_zeros(())
        ctx.save_for_backward(q, p)
        return ce, kl

    @staticmethod
    def backward(ctx, g_ce, g_kl):
        q, p = ctx.saved_tensors
        b = q.shape[0]
        a_s = 0.0 if g_ce is None else float(g_ce) / b
        a_d = 0.0 if (g_kl is None or p is None) else float(g_kl) / b
        grad = q * (a_s + a_d)
        if a_d:
            grad.sub_(p, alpha=a_d)
        grad[:, 0] -= a_s
        return grad, None, None


def softmax_distill(
    logits: torch.Tensor, p: torch.Tensor | None = None, p_entropy: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sampled-softmax CE, KL(teacher || student))`` of the same (masked) logits, fused: equal
    in value and gradient to :func:`sampled_softmax` + :func:`distillation` of
    ``log_softmax(logits)`` at a fraction of the passes over the ``(b, 1 + C)`` matrix
    (the dominant cost of a step). ``p``/``p_entropy`` from :func:`teacher_distribution`."""
    return _SoftmaxDistill.apply(logits, p, p_entropy)


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
