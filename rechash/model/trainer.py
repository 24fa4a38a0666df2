"""Training loop of the twin towers: the model owns parameters, the Trainer owns the loop."""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from rechash.codes import binarize, to_signs
from rechash.evaluation import per_user_metrics
from rechash.model import losses as L
from rechash.model.sampling import (
    NegativeSampler,
    PairSampler,
    accidental_hits,
    item_log_popularity,
    sample_history,
)
from rechash.model.towers import Towers


@dataclass
class TrainConfig:
    """Every training hyper-parameter (saved in the model directory).

    Defaults tuned on ml-1m (64 bits, ALS teacher): 512 shared uniform negatives, peak lr 0.01
    with cosine decay over a ~900-step budget (3 epochs) reach test Recall@20 0.212 by Hamming
    distance alone in about a minute on one CPU thread; 1,024 negatives or a constant lr of 0.003
    needed 2-5x the time for the same accuracy (experiments/results/training_time.md)."""

    epochs: int | None = None  # None: about `auto_steps` optimizer steps (3 epochs on ml-1m, 28 on lastfm)
    auto_steps: int = 900
    batch_size: int = 2048
    lr: float = 0.01  # peak Adam lr
    lr_schedule: str = "cosine"  # or "linear" / "constant": decay per step to lr * lr_final over the epochs
    lr_final: float = 0.1
    # candidates of the softmax / BPR
    negatives: int = 512
    negative_sampling: str = "uniform"  # or "popularity"
    negative_power: float = 1.0
    in_batch: bool = False
    logq: bool = True
    tau: float = 0.1  # logits = s / tau, s in [-1, 1]
    learn_tau: bool = False  # learnable; off by default: on ml-1m it sharpened to ~0.03 and hurt the codes
    # relaxation
    relaxation: str = "tanh"  # or "ste"
    beta: float = 1.0
    beta_growth: float = 1.0  # beta *= growth after every epoch (continuation when > 1)
    beta_max: float = 1.0
    # loss weights
    w_softmax: float = 1.0
    w_bpr: float = 0.0
    w_quant: float = 0.0
    w_balance: float = 0.0
    w_decor: float = 0.0
    w_distill: float = 1.0  # used when a teacher is given
    teacher_tau: float = 0.1
    # towers / initialisation
    init: str = "teacher"  # "teacher" (ITQ-rotated teacher factors when a teacher is given) or "random"
    init_scale: float | None = None  # rms of the initial z; None: 1.0 from a teacher, 0.1 at random
    id_dropout: float = 0.0  # share of rows whose ID embedding is dropped (trains the history path)
    history_cap: int = 32  # history items per training row (all when fewer; else sampled)
    # loop
    patience: int = 3
    eval_k: int = 20
    threads: int | None = 1  # torch CPU threads (None: all cores); 1 is fastest on a shared machine
    device: str = "auto"
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def n_epochs(self, steps_per_epoch: int) -> int:
        """The epoch budget: ``epochs``, or ``round(auto_steps / steps_per_epoch)`` (at least 1) when None."""
        if self.epochs is not None:
            return int(self.epochs)
        return max(1, int(round(self.auto_steps / max(steps_per_epoch, 1))))


@dataclass
class EpochLog:
    """What one epoch did: mean losses, validation Recall@K with binary codes, timing."""

    epoch: int
    loss: float
    parts: dict
    valid_recall: float | None
    beta: float
    tau: float
    seconds: float
    interactions_per_s: float
    best: bool = False
    extra: dict = field(default_factory=dict)


def hamming_topk(
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Full ranking by Hamming distance alone: ``(ids, scores = -hamming)`` of shape ``(len(users), k)``,
    ties by item id ascending, ``exclude`` rows (indexed by user id) removed, -1 / -inf padding:
    the same output as :func:`rechash.evaluation.full_ranking` with ``-hamming_distances`` scores.

    Distances come from a float32 product of the +-1 codes (``<s_u, s_i> = B - 2 d``, exact for
    integers); the tie rule is folded into one float64 key ``(B - 2 d) * n + (n - 1 - id)`` so a
    single ``torch.topk`` per batch gives the exact order (several times faster than the oracle)."""
    users = np.asarray(users, dtype=np.int64)
    su, si = torch.from_numpy(to_signs(user_codes)), torch.from_numpy(to_signs(item_codes))
    n, bits = si.shape[0], si.shape[1]
    kk = min(int(k), n)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    bonus = torch.arange(n - 1, -1, -1, dtype=torch.float64)
    out_ids = np.full((len(users), k), -1, dtype=np.int64)
    out_scores = np.full((len(users), k), -np.inf)
    with torch.inference_mode():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            key = (su[torch.from_numpy(batch)] @ si.T).double().mul_(n).add_(bonus)
            if exclude is not None:
                rows = exclude[batch]
                r = torch.from_numpy(np.repeat(np.arange(len(batch)), np.diff(rows.indptr)))
                key[r, torch.from_numpy(rows.indices.astype(np.int64))] = -np.inf
            vals, idx = torch.topk(key, kk, dim=1)
            dead = torch.isneginf(vals)
            dot = torch.div(vals - torch.gather(bonus.expand(len(batch), -1), 1, idx), n, rounding_mode="floor")
            scores = torch.where(dead, float("-inf"), (dot - bits) * 0.5)
            out_ids[start : start + len(batch), :kk] = torch.where(dead, -1, idx).numpy()
            out_scores[start : start + len(batch), :kk] = scores.numpy()
    return out_ids, out_scores


def hamming_recall(
    user_codes: np.ndarray, item_codes: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None, k: int = 20
) -> float:
    """Mean Recall@K of Hamming-only ranking over the users with at least one truth item."""
    users = np.flatnonzero(np.diff(truth.indptr))
    ids, _ = hamming_topk(user_codes, item_codes, users, k, exclude)
    return float(per_user_metrics(ids, users, truth, ks=(k,))[f"recall@{k}"].mean())


def all_floats(towers: Towers, history: sp.csr_matrix, device: torch.device, batch: int = 4096):
    """``(user z, item z)`` for every user and item, float32 numpy (no gradients)."""
    towers.eval()
    n_users, n_items = history.shape
    us, its = [], []
    with torch.inference_mode():
        for s in range(0, n_users, batch):
            u = torch.arange(s, min(s + batch, n_users), device=device)
            h = towers.user.pool(history[s : s + batch]) if towers.user.use_history else None
            us.append(towers.user(u, h).cpu().numpy())
        for s in range(0, n_items, batch):
            its.append(towers.item(torch.arange(s, min(s + batch, n_items), device=device)).cpu().numpy())
    towers.train()
    return np.concatenate(us).astype(np.float32), np.concatenate(its).astype(np.float32)


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base lr after ``step`` optimizer steps (constant, linear or cosine decay
    from 1 to ``lr_final`` over ``epochs * steps_per_epoch`` steps)."""
    kind, total, final = config.lr_schedule, max(config.n_epochs(steps_per_epoch) * steps_per_epoch, 1), config.lr_final
    if kind not in ("constant", "linear", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine', got {kind!r}")

    def factor(step: int) -> float:
        t = min(step / total, 1.0)
        if kind == "linear":
            return 1.0 - (1.0 - final) * t
        if kind == "cosine":
            return final + (1.0 - final) * 0.5 * (1.0 + np.cos(np.pi * t))
        return 1.0

    return factor


class Trainer:
    """Mini-batch training with sampled softmax / BPR, regularisers, distillation and early stopping
    on validation Recall@K of the binary codes. The best epoch's parameters are restored at the end."""

    def __init__(
        self,
        towers: Towers,
        config: TrainConfig,
        train: sp.csr_matrix,
        *,
        valid: sp.csr_matrix | None = None,
        teacher: tuple[np.ndarray, np.ndarray] | None = None,
        device: torch.device,
        rng: np.random.Generator,
        callbacks: Sequence[Callable[[EpochLog], object]] = (),
    ) -> None:
        self.towers, self.config, self.train = towers, config, train.tocsr()
        self.valid = None if valid is None or valid.nnz == 0 else valid.tocsr()
        self.device, self.rng, self.callbacks = device, rng, list(callbacks)
        counts = np.bincount(self.train.indices, minlength=self.train.shape[1])
        self.pairs = PairSampler(self.train, config.batch_size)
        self.negs = NegativeSampler(counts, config.negative_sampling, config.negative_power)
        self.neg_logq = torch.from_numpy(self.negs.log_q).to(device)
        self.pop_logq = torch.from_numpy(item_log_popularity(counts)).to(device)
        self.teacher = None
        if teacher is not None:
            tu, ti = (torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).to(device) for t in teacher)
            self.teacher = (tu / config.teacher_tau, ti)
        towers.log_tau.requires_grad_(config.learn_tau)
        params = [p for p in towers.parameters() if p.requires_grad]
        self.optimizers = [torch.optim.Adam(params, lr=config.lr, fused=True)]
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lr_factor(config, len(self.pairs))) for o in self.optimizers]
        self.history: list[EpochLog] = []

    # ---- one step ---------------------------------------------------------------------
    def _step(self, users: np.ndarray, items: np.ndarray, beta: float) -> dict[str, float]:
        c, dev = self.config, self.device
        neg_np = self.negs.sample(c.negatives, self.rng) if c.negatives else items[:0]
        cand_np = np.concatenate([items, neg_np]) if c.in_batch else neg_np
        hit_rows, hit_cols = (torch.from_numpy(x).to(dev) for x in accidental_hits(items, cand_np))
        u = torch.from_numpy(users).to(dev)
        i = torch.from_numpy(items).to(dev)
        neg = torch.from_numpy(neg_np).to(dev)
        cand = torch.from_numpy(cand_np).to(dev)
        user_keep = None
        if c.id_dropout > 0:
            user_keep = torch.from_numpy((self.rng.random(len(users)) >= c.id_dropout).astype(np.float32)).to(dev)
        pooled = None
        if self.towers.user.use_history:
            hi, hw = sample_history(self.train, users, items, c.history_cap, self.rng)
            pooled = self.towers.user.pool_sampled(torch.from_numpy(hi).to(dev), torch.from_numpy(hw).to(dev))
        zu = self.towers.user(u, pooled, user_keep)
        zi_all = self.towers.item(torch.cat([i, neg]))
        zpos = zi_all[: len(i)]
        zcand = zi_all if c.in_batch else zi_all[len(i) :]
        hu, hpos, hcand = (L.relax(z, beta, c.relaxation) for z in (zu, zpos, zcand))
        logits = L.candidate_logits(hu, hpos, hcand, 1.0 / (self.towers.tau * self.towers.bits))
        L.mask_hits_(logits, hit_rows, hit_cols)
        parts: dict[str, torch.Tensor] = {}
        if c.w_bpr:
            hit_mask = None
            if len(hit_rows):
                hit_mask = torch.zeros(logits.shape[0], logits.shape[1] - 1, dtype=torch.bool, device=dev)
                hit_mask[hit_rows, hit_cols] = True
            parts["bpr"] = c.w_bpr * L.bpr(logits, hit_mask)
        use_distill = self.teacher is not None and c.w_distill > 0
        if c.w_softmax or use_distill:
            p = p_ent = None
            if use_distill:
                tu, ti = self.teacher  # tu already divided by teacher_tau
                with torch.no_grad():
                    q = tu[u]
                    tlogits = torch.cat([torch.linalg.vecdot(q, ti[i])[:, None], q @ ti[cand].T], dim=1)
                    L.mask_hits_(tlogits, hit_rows, hit_cols)
                    p, p_ent = L.teacher_distribution(tlogits)
            if c.logq and (c.in_batch or c.negative_sampling != "uniform"):
                pos_q = self.pop_logq[i][:, None] if c.in_batch else torch.zeros(len(i), 1, device=dev)
                col_q = torch.cat(([self.pop_logq[i]] if c.in_batch else []) + [self.neg_logq[neg]])
                corrected = logits - torch.cat([pos_q, col_q[None, :].expand(len(i), -1)], dim=1)
                ce = L.softmax_distill(corrected)[0]
                kl = L.softmax_distill(logits, p, p_ent)[1] if use_distill else None
            else:  # one fused pass serves both losses
                ce, kl = L.softmax_distill(logits, p, p_ent)
            if c.w_softmax:
                parts["softmax"] = c.w_softmax * ce
            if use_distill:
                parts["distill"] = c.w_distill * kl
        h_both = torch.cat([hu, hpos])
        if c.w_quant:
            parts["quant"] = c.w_quant * L.quantization(h_both)
        if c.w_balance:
            parts["balance"] = c.w_balance * (L.bit_balance(hu) + L.bit_balance(hcand)) / 2
        if c.w_decor:
            parts["decor"] = c.w_decor * (L.decorrelation(hu) + L.decorrelation(hcand)) / 2
        loss = sum(parts.values())
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in self.optimizers:
            opt.step()
        for sched in self.schedulers:
            sched.step()
        with torch.no_grad():
            self.towers.log_tau.clamp_(np.log(1e-3), np.log(10.0))
        out = {k: float(v.detach()) for k, v in parts.items()}
        out["loss"] = float(loss.detach())
        return out

    def validate(self) -> float:
        uz, iz = all_floats(self.towers, self.train, self.device)
        return hamming_recall(binarize(uz), binarize(iz), self.valid, self.train, self.config.eval_k)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> list[EpochLog]:
        c = self.config
        from tqdm.auto import tqdm

        best_score, best_state, bad = -1.0, None, 0
        beta = c.beta
        if self.valid is not None:  # epoch 0: the initialisation itself (e.g. ITQ-rotated teacher)
            t0 = time.perf_counter()
            best_score = self.validate()
            best_state = copy.deepcopy(self.towers.state_dict())
            log0 = EpochLog(0, float("nan"), {}, best_score, beta, float(self.towers.tau.detach()), time.perf_counter() - t0, 0.0, True)
            self.history.append(log0)
            for cb in self.callbacks:
                cb(log0)
        bar = tqdm(range(1, c.n_epochs(len(self.pairs)) + 1), desc="fit", unit="epoch", disable=not c.progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            n_steps = 0
            for users, items in self.pairs.epoch(self.rng):
                for k, v in self._step(users, items, beta).items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
            train_s = time.perf_counter() - t0
            parts = {k: v / max(n_steps, 1) for k, v in sums.items()}
            score = self.validate() if self.valid is not None else None
            log = EpochLog(
                epoch=epoch,
                loss=parts.pop("loss", float("nan")),
                parts=parts,
                valid_recall=score,
                beta=beta,
                tau=float(self.towers.tau.detach()),
                seconds=time.perf_counter() - t0,
                interactions_per_s=self.train.nnz / max(train_s, 1e-9),
            )
            if score is not None and score > best_score:
                best_score, bad, log.best = score, 0, True
                best_state = copy.deepcopy(self.towers.state_dict())
            elif score is not None:
                bad += 1
            self.history.append(log)
            post = {"loss": f"{log.loss:.4f}", "beta": f"{beta:.3g}"}
            if score is not None:
                post[f"valid R@{c.eval_k}"] = f"{score:.4f}"
                post["best"] = f"{best_score:.4f}"
            bar.set_postfix(post)
            stop = False
            for cb in self.callbacks:
                stop = bool(cb(log)) or stop
            beta = min(beta * c.beta_growth, max(c.beta_max, c.beta))
            if stop or (score is not None and bad >= c.patience):
                break
        bar.close()
        if best_state is not None:
            self.towers.load_state_dict(best_state)
        return self.history
