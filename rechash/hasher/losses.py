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


#: ``(rows, cols)`` of candidate columns that must not count as a row's negatives
Hits = tuple[torch.Tensor, torch.Tensor]
#: the teacher's ``(user rows / teacher_tau, positive rows, candidate rows)``
TeacherRows = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
#: ranking distillation: ``(relaxed codes of one teacher item per row, rows kept, its own hits)``
Ranked = tuple[torch.Tensor, torch.Tensor, Hits]


def losses_by_pieces(
    q: torch.Tensor,
    hpos: torch.Tensor,
    hcand: torch.Tensor,
    hits: Hits,
    *,
    teacher: TeacherRows | None = None,
    ranked: Ranked | None = None,
    ce_shift: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`candidate_losses` with the ``(b, 1 + C)`` logits materialised, plus those masked
    logits: the trainer's path for BPR (which scores them) and for logQ-corrected negatives
    (in-batch or popularity-sampled: ``ce_shift``, the logQ of each column, is subtracted for
    the CE only). Without ``ce_shift``, the same values and gradients as the fused pass."""
    logits = mask_hits_(candidate_logits(q, hpos, hcand, 1.0), *hits)
    p = p_ent = None
    if teacher is not None:
        tq, tpos, tcand = teacher
        with torch.no_grad():
            tlogits = torch.cat([torch.linalg.vecdot(tq, tpos)[:, None], tq @ tcand.T], dim=1)
            p, p_ent = teacher_distribution(mask_hits_(tlogits, *hits))
    ce, kl = softmax_distill(logits, p, p_ent)
    if ce_shift is not None:
        ce = softmax_distill(logits - ce_shift)[0]
    rank = ce.new_zeros(())
    if ranked is not None:
        ht, keep, rank_hits = ranked
        t_logits = torch.cat([torch.linalg.vecdot(q, ht)[:, None], logits[:, 1:]], dim=1)
        rank = softmax_distill(mask_hits_(t_logits, *rank_hits)[keep])[0]
    return ce, kl, rank, logits


class Workspace:
    """Reused buffers for the ``(b, C)`` matrices of a training step: a product written into a
    kept buffer (``out=``) skips allocating and first touching a large matrix every step. A
    buffer is reused by the next step, so the losses that write into it must be
    backpropagated before the next step starts (the trainer's loop does)."""

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised ``shape`` tensor with ``like``'s dtype and device, backed by buffer ``name``."""
        size = shape[0] * shape[1]
        flat = self._flat.get(name)
        if flat is None or flat.numel() < size or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._flat[name] = torch.empty(size, dtype=like.dtype, device=like.device)
        return flat[:size].view(shape)


class _CandidateLosses(torch.autograd.Function):
    """The three losses over one shared candidate matrix, fused: sampled-softmax CE of the
    positive, KL(teacher || student) over ``[positive, candidates]`` and the ranking-distillation
    CE of the teacher's item against the same candidates, with their closed-form gradient.

    Equal in value and gradient to :func:`losses_by_pieces` (:func:`candidate_logits`,
    :func:`mask_hits_`, :func:`teacher_distribution`, :func:`softmax_distill` twice), at a
    fraction of the passes over the ``(b, C)`` matrices: one
    exponential of the student's logits serves all three losses, the teacher's logits are
    exponentiated once, and the gradient is written in place of the exponentials (no
    concatenated or sliced copies of the matrix, whose backward passes allocate and fill
    zeros). Its speed against :func:`losses_by_pieces`: ``python experiments/bench_losses.py``
    (experiments/results/bench_losses.md)."""

    @staticmethod
    def forward(ctx, q, hpos, hcand, ht, tq, tpos, tcand, hits, rank_hits, keep, workspace):
        hit_rows, hit_cols = hits
        b = q.shape[0]
        n = torch.mm(q, hcand.T, out=workspace.get("student", (b, hcand.shape[0]), q))
        pos = torch.linalg.vecdot(q, hpos)
        if len(hit_rows):
            n.index_put_((hit_rows, hit_cols), torch.tensor(NEG_INF, dtype=n.dtype))
        p = p0 = p_ent = None
        if tq is not None:
            t = torch.mm(tq, tcand.T, out=workspace.get("teacher", (b, tcand.shape[0]), tq))
            t0 = torch.linalg.vecdot(tq, tpos)
            if len(hit_rows):
                t.index_put_((hit_rows, hit_cols), torch.tensor(NEG_INF, dtype=t.dtype))
            mt = torch.maximum(t.amax(dim=1), t0)
            e0 = torch.exp(t0 - mt)
            p = t.sub_(mt[:, None]).exp_()
            st = p.sum(dim=1) + e0
            p.div_(st[:, None])
            p0 = e0 / st
            # sum_j p_j <x, y_j> = <x, sum_j p_j y_j>: one product with both candidate tables
            # gives the teacher's entropy term and the student's p-weighted logit, no (b, C) temporary
            bits = hcand.shape[1]
            ph = p @ torch.cat([hcand, tcand], dim=1)
            p_ent = torch.linalg.vecdot(tq, ph[:, bits:]) + p0 * t0 - (mt + torch.log(st))
            pn = torch.linalg.vecdot(q, ph[:, :bits]) + p0 * pos
        tcol = torch.linalg.vecdot(q, ht) if ht is not None else None
        m = torch.maximum(n.amax(dim=1), pos if tcol is None else torch.maximum(pos, tcol))
        e = n.sub_(m[:, None]).exp_()
        s_neg = e.sum(dim=1)
        epos = torch.exp(pos - m)
        s_main = s_neg + epos
        lse = m + torch.log(s_main)
        ce = (lse - pos).mean()
        kl = (p_ent + lse - pn).mean() if p is not None else ce.new_zeros(())
        rank = ce.new_zeros(())
        s_rank = et = None
        rank_rows, rank_cols = rank_hits
        if tcol is not None:
            s_rank_neg = s_neg
            if len(rank_rows):
                s_rank_neg = s_neg.index_add(0, rank_rows, -e[rank_rows, rank_cols])
            et = torch.exp(tcol - m)
            s_rank = s_rank_neg + et
            per_row = m + torch.log(s_rank) - tcol
            rank = per_row[keep].mean() if bool(keep.any()) else ce.new_zeros(())
        ctx.save_for_backward(q, hpos, hcand, ht, e, p, p0, s_main, epos, s_rank, et, keep, rank_rows, rank_cols)
        ctx.b = b
        return ce, kl, rank

    @staticmethod
    def backward(ctx, g_ce, g_kl, g_rank):
        q, hpos, hcand, ht, e, p, p0, s_main, epos, s_rank, et, keep, rank_rows, rank_cols = ctx.saved_tensors
        a_s = float(g_ce) / ctx.b
        a_d = float(g_kl) / ctx.b if p is not None else 0.0
        coef = (a_s + a_d) / s_main
        if s_rank is not None:  # the ranking CE's share: a_r / s_rank on the kept rows
            a_r = keep.to(e.dtype) * (float(g_rank) / max(int(keep.sum()), 1))
            coef = coef + a_r / s_rank
            fix = e[rank_rows, rank_cols] * (a_r / s_rank)[rank_rows]  # before e turns into the gradient
        g = e.mul_(coef[:, None])  # the gradient w.r.t. the candidate logits, in place
        if p is not None:
            g.sub_(p, alpha=a_d)
        if s_rank is not None:
            g.index_put_(
                (rank_rows, rank_cols), -fix, accumulate=True
            )  # the teacher item's own copies are not its negatives
        d_pos = (a_s + a_d) * epos / s_main - a_s - (a_d * p0 if p is not None else 0.0)
        grad_q = g @ hcand + d_pos[:, None] * hpos
        grad_ht = None
        if s_rank is not None:
            d_t = a_r * (et / s_rank - 1.0)
            grad_q += d_t[:, None] * ht
            grad_ht = d_t[:, None] * q
        return grad_q, d_pos[:, None] * q, g.T @ q, grad_ht, None, None, None, None, None, None, None


def candidate_losses(
    q: torch.Tensor,
    hpos: torch.Tensor,
    hcand: torch.Tensor,
    hits: Hits,
    *,
    teacher: TeacherRows | None = None,
    ranked: Ranked | None = None,
    workspace: Workspace | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(softmax CE, distillation KL, ranking CE)`` of one batch over shared candidates, fused.

    ``q``: the users' relaxed codes times ``1 / (B tau)``; ``hpos`` / ``hcand``: relaxed codes of
    the positives and of the candidates; ``hits``: ``(rows, cols)`` where a row's positive is
    among the candidates (never its negative). ``teacher``: ``(user rows / teacher_tau, positive
    rows, candidate rows)`` of the teacher's factors (KL is 0 without it). ``ranked``:
    ``(relaxed codes of one teacher item per row, keep, (rows, cols))``: the ranking CE of that
    item against the candidates over the ``keep`` rows, its own copies among the candidates
    excluded (0 without it). ``workspace``: buffers kept across steps (:class:`Workspace`); the
    returned losses must be backpropagated before it serves another call."""
    tq, tpos, tcand = teacher if teacher is not None else (None, None, None)
    ht, keep, rank_hits = ranked if ranked is not None else (None, None, (hits[0][:0], hits[1][:0]))
    return _CandidateLosses.apply(q, hpos, hcand, ht, tq, tpos, tcand, hits, rank_hits, keep, workspace or Workspace())
