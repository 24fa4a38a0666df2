from __future__ import annotations

import numpy as np
import pytest
import torch

from rechash.hasher import losses as L
from rechash.hasher.towers import UserTower
from rechash.hasher.trainer import TrainConfig, lr_factor


def _masked(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, t = (torch.randn(9, 13, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    rows, cols = torch.tensor([1, 4]), torch.tensor([3, 0])
    return L.mask_hits_(x, rows, cols), L.mask_hits_(t, rows, cols)


@pytest.mark.parametrize("w_s, w_d", [(1.0, 1.0), (0.7, 1.3), (1.0, 0.0), (0.0, 2.0)])
def test_fused_softmax_distill_matches_autograd(w_s, w_d):
    x, t = _masked(0)
    p, p_ent = L.teacher_distribution(t)
    assert torch.allclose(p_ent, (p * torch.log_softmax(t, 1).clamp_min(L.NEG_INF)).sum(1))
    ref_x, fused_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    lp = torch.log_softmax(ref_x, dim=1)
    ref = w_s * L.sampled_softmax(lp) + w_d * L.distillation(lp, p, p_ent)
    ref.backward()
    ce, kl = L.softmax_distill(fused_x, p if w_d else None, p_ent if w_d else None)
    (w_s * ce + w_d * kl).backward()
    assert torch.allclose(w_s * ce + w_d * kl, ref)
    assert torch.allclose(fused_x.grad, ref_x.grad, atol=1e-12)
    assert kl.item() >= 0 if w_d else kl.item() == 0


def test_csr_history_pooling_is_the_weighted_mean():
    tower = UserTower(5, 7, 4)
    items = torch.tensor([[0, 3, 3, 6], [1, 2, 0, 0]])
    w = torch.tensor([[1.0, 2.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    got = tower.pool_sampled(items, w)
    e = tower.hist_emb.weight.detach()
    assert torch.allclose(got[0], (e[0] + 3 * e[3]) / 4) and torch.allclose(got[1], (e[1] + e[2]) / 2)
    got.sum().backward()  # gradients reach the context table, duplicates summed
    assert torch.allclose(tower.hist_emb.weight.grad[3], torch.full((4,), 0.75))
    assert torch.allclose(tower.hist_emb.weight.grad[5], torch.zeros(4))


def test_lr_schedules():
    steps = 10
    for kind in ("linear", "cosine"):
        f = lr_factor(TrainConfig(epochs=2, lr_schedule=kind, lr_final=0.1), steps)
        vals = np.array([f(s) for s in range(0, 2 * steps + 1)])
        assert vals[0] == pytest.approx(1.0) and vals[-1] == pytest.approx(0.1)
        assert (np.diff(vals) <= 1e-12).all()
    assert lr_factor(TrainConfig(lr_schedule="constant"), steps)(7) == 1.0
    with pytest.raises(ValueError):
        lr_factor(TrainConfig(lr_schedule="step"), steps)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.5, 2.0, 0.3), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
def test_fused_candidate_losses_match_the_losses_by_pieces(weights):
    g = torch.Generator().manual_seed(1)
    b, c, bits, d = 9, 13, 6, 5
    q, hpos, ht = (torch.tanh(torch.randn(b, bits, generator=g, dtype=torch.float64)) * 2 for _ in range(3))
    hcand = torch.tanh(torch.randn(c, bits, generator=g, dtype=torch.float64))
    tq, tpos = (torch.randn(b, d, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    tcand = torch.randn(c, d, generator=g, dtype=torch.float64)
    hits = (torch.tensor([1, 4, 4]), torch.tensor([3, 0, 7]))
    rank_hits = (torch.tensor([0, 2, 4]), torch.tensor([5, 5, 1]))
    keep = torch.tensor([True, True, False, True, True, True, True, False, True])
    grads = []
    for fused in (False, True):
        leaves = [x.clone().requires_grad_() for x in (q, hpos, hcand, ht)]
        if fused:
            out = L.candidate_losses(*leaves[:3], hits, teacher=(tq, tpos, tcand), ranked=(leaves[3], keep, rank_hits))
        else:
            out = L.losses_by_pieces(*leaves[:3], hits, teacher=(tq, tpos, tcand), ranked=(leaves[3], keep, rank_hits))[
                :3
            ]
        total = sum(w * x for w, x in zip(weights, out))
        total.backward()
        grads.append((torch.stack([x.detach() for x in out]), [x.grad for x in leaves]))
    (ref, ref_grads), (got, got_grads) = grads
    assert torch.allclose(got, ref, atol=1e-12)
    for a, r in zip(got_grads, ref_grads):
        assert torch.allclose(a, r, atol=1e-12)


def test_fused_candidate_losses_without_teacher_or_ranking_are_the_softmax_alone():
    g = torch.Generator().manual_seed(2)
    q, hpos = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    hcand = torch.randn(11, 4, generator=g, dtype=torch.float64)
    hits = (torch.tensor([2]), torch.tensor([6]))
    ce, kl, rank = L.candidate_losses(q, hpos, hcand, hits)
    ref = L.softmax_distill(L.mask_hits_(L.candidate_logits(q, hpos, hcand, 1.0), *hits))[0]
    assert torch.allclose(ce, ref) and kl.item() == 0 and rank.item() == 0
    assert [x.item() for x in L.losses_by_pieces(q, hpos, hcand, hits)[1:3]] == [0.0, 0.0]
