"""Training loop of the twin towers: the model owns parameters, the Trainer owns the loop."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from rechash.codes.bits import binarize
from rechash.errors import ConfigError, TrainingError
from rechash.hasher import losses as L
from rechash.hasher.config import TrainConfig
from rechash.hasher.sampling import (
    NegativeSampler,
    PairSampler,
    accidental_hits,
    item_log_popularity,
    sample_history,
)
from rechash.hasher.towers import Towers, normalized_adjacency
from rechash.rank.metrics import per_user_metrics

logger = logging.getLogger(__name__)


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
) -> tuple[np.ndarray, np.ndarray]:
    """Full ranking by Hamming distance alone: ``(ids, scores = -hamming)`` of shape ``(len(users), k)``,
    ties by item id ascending, ``exclude`` rows (indexed by user id) removed, -1 / -inf padding.

    The exact index's search (:class:`rechash.index.flat.ExactIndex`), the scan serving pools
    come from, so training and serving rank by one kernel; on torch's thread count, which the
    fit sets from ``TrainConfig.threads``."""
    from rechash.index.flat import ExactIndex

    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    users = np.asarray(users, dtype=np.int64)
    rows = None if exclude is None else sp.csr_matrix(exclude)[users]
    index = ExactIndex.from_codes(item_codes, n_threads=torch.get_num_threads())
    dist, ids = index.search(user_codes[users], int(k), exclude=rows)
    return ids, np.where(ids >= 0, -dist.astype(np.float64), -np.inf)


def hamming_recall(
    user_codes: np.ndarray, item_codes: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None, k: int = 20
) -> float:
    """Mean Recall@K of Hamming-only ranking over the users with at least one truth item."""
    users = np.flatnonzero(np.diff(truth.indptr))
    ids, _ = hamming_topk(user_codes, item_codes, users, k, exclude)
    return float(per_user_metrics(ids, users, truth, ks=(k,))[f"recall@{k}"].mean())


def all_floats(
    towers: Towers,
    history: sp.csr_matrix,
    device: torch.device,
    batch: int = 4096,
    tables: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """``(user z, item z)`` for every user and item, float32 numpy (no gradients); ``tables``:
    graph-propagated ID rows (users, items) to use instead of the embeddings."""
    towers.eval()
    n_users, n_items = history.shape
    tu, ti = tables or (None, None)
    us, its = [], []
    with torch.inference_mode():
        for s in range(0, n_users, batch):
            u = torch.arange(s, min(s + batch, n_users), device=device)
            h = towers.user.pool(history[s : s + batch]) if towers.user.use_history else None
            us.append(towers.user(u, h, table=tu).cpu().numpy())
        for s in range(0, n_items, batch):
            its.append(towers.item(torch.arange(s, min(s + batch, n_items), device=device), table=ti).cpu().numpy())
    towers.train()
    return np.concatenate(us).astype(np.float32), np.concatenate(its).astype(np.float32)


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base lr after ``step`` optimizer steps: linear or cosine decay from 1 to
    ``lr_final`` over ``total_steps``, or 1 (``constant``; ``plateau`` halves it in the loop instead)."""
    kind, total, final = config.lr_schedule, max(total_steps, 1), config.lr_final

    def factor(step: int) -> float:
        t = min(step / total, 1.0)
        if kind == "linear":
            return 1.0 - (1.0 - final) * t
        if kind == "cosine":
            return final + (1.0 - final) * 0.5 * (1.0 + np.cos(np.pi * t))
        return 1.0

    return factor


def teacher_top_items(
    user_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix, r: int, batch: int = 2048
) -> np.ndarray:
    """``(n_users, r)`` the teacher's top-``r`` items per user by dot product, the user's ``seen``
    items excluded (ties by item id; -1 padded): the lists ranking distillation teaches."""
    from rechash.rank.topk import topk_rows

    n = len(user_factors)
    out = np.full((n, r), -1, dtype=np.int64)
    items = torch.from_numpy(np.ascontiguousarray(item_factors, dtype=np.float32))
    with torch.inference_mode():
        for s in range(0, n, batch):
            scores = (
                torch.from_numpy(np.ascontiguousarray(user_factors[s : s + batch], dtype=np.float32)) @ items.T
            ).numpy()
            out[s : s + batch] = topk_rows(scores, r, seen[s : s + batch])[0]
    return out


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
        if self.valid is not None:  # a fixed sample of at most eval_users validation users
            users = np.flatnonzero(np.diff(self.valid.indptr))
            if len(users) > config.eval_users:
                keep = np.zeros(self.valid.shape[0], dtype=np.float32)
                keep[np.random.default_rng(0).choice(users, size=config.eval_users, replace=False)] = 1.0
                self.valid = sp.csr_matrix(sp.diags(keep) @ self.valid)
                self.valid.eliminate_zeros()
        self.device, self.rng, self.callbacks = device, rng, list(callbacks)
        counts = np.bincount(self.train.indices, minlength=self.train.shape[1])
        self.pairs = PairSampler(self.train, config.batch_size)
        self.negs = NegativeSampler(counts, config.negative_sampling, config.negative_power)
        self.n_negatives = config.n_negatives(self.train.nnz)
        self.exhaustive = self.negs.exhaustive(self.n_negatives)  # every item once: no logQ for the negatives
        #: the CE's logits are logQ-corrected (in-batch or popularity-sampled negatives): the by-pieces path
        self.corrected = config.logq and (
            config.in_batch or (config.negative_sampling != "uniform" and not self.exhaustive)
        )
        self.neg_logq = torch.from_numpy(self.negs.log_q).to(device)
        self.pop_logq = torch.from_numpy(item_log_popularity(counts)).to(device)
        self.adjacency = None
        if config.graph_layers:
            if towers.user.id_emb is None:
                raise ConfigError("--graph-layers needs the user ID embedding (--user-id)")
            self.adjacency = normalized_adjacency(self.train).to(device)
        self.teacher = self.teacher_top = None
        if teacher is not None:
            tu, ti = (torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).to(device) for t in teacher)
            self.teacher = (tu / config.teacher_tau, ti)
            if config.w_rank > 0:
                top = teacher_top_items(teacher[0], teacher[1], self.train, config.rank_r)
                self.teacher_top = torch.from_numpy(top).to(device)
                decay = np.exp(-np.arange(config.rank_r) / config.rank_decay)
                self.rank_cdf = np.cumsum(decay / decay.sum())
        towers.log_tau.requires_grad_(config.learn_tau)
        params = [p for p in towers.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, fused=True)
        self.epoch_cap = config.n_epochs(self.train.shape[0], self.train.nnz)
        schedule = lr_factor(config, self.epoch_cap * len(self.pairs))
        self.plateau_scale = 1.0  # halved after every epoch without improvement (lr_schedule="plateau")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: schedule(step) * self.plateau_scale
        )
        self.workspace = L.Workspace()
        self.history: list[EpochLog] = []
        self.stop_reason = ""
        self.epoch = self.steps = 0

    # ---- one step ---------------------------------------------------------------------
    def _step(self, users: np.ndarray, items: np.ndarray, beta: float) -> dict[str, float]:
        c, dev = self.config, self.device
        neg_np = self.negs.sample(self.n_negatives, self.rng) if self.n_negatives else items[:0]
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
        tu_rows, ti_rows = self._tables() if self.adjacency is not None else (None, None)
        zu = self.towers.user(u, pooled, user_keep, table=tu_rows)
        t_items = None
        if self.teacher_top is not None:  # one teacher item per row, rank-decayed draw from the user's top-R
            ranks = np.searchsorted(self.rank_cdf, self.rng.random(len(users)), side="right")
            t_items = self.teacher_top[u, torch.from_numpy(np.minimum(ranks, c.rank_r - 1)).to(dev)]
        extra = [] if t_items is None else [t_items.clamp_min(0)]
        item_rows = torch.cat([i, neg] + extra)
        item_keep = None
        if c.item_id_dropout > 0 and self.towers.item.feat_mlp is not None:  # rows scored by their features alone
            item_keep = torch.from_numpy((self.rng.random(len(item_rows)) >= c.item_id_dropout).astype(np.float32)).to(
                dev
            )
        zi_all = self.towers.item(item_rows, item_keep, table=ti_rows)
        zpos = zi_all[: len(i)]
        zcand = zi_all[len(i) : len(i) + len(neg)] if not c.in_batch else zi_all[: len(i) + len(neg)]
        hu, hpos, hcand = (L.relax(z, beta, c.relaxation) for z in (zu, zpos, zcand))
        scale = 1.0 / (self.towers.tau * self.towers.bits)
        use_distill = self.teacher is not None and c.w_distill > 0
        teacher_rows = None
        if use_distill:
            tu, ti = self.teacher  # tu already divided by teacher_tau
            teacher_rows = (tu[u], ti[i], ti[cand])
        ranked = None
        if t_items is not None and c.w_rank:
            ht = L.relax(zi_all[len(i) + len(neg) :], beta, c.relaxation)
            t_hits = (torch.from_numpy(x).to(dev) for x in accidental_hits(t_items.cpu().numpy(), cand_np))
            ranked = (ht, t_items >= 0, tuple(t_hits))
        parts: dict[str, torch.Tensor] = {}
        if not (c.w_bpr or self.corrected):  # the default: every loss from one fused pass
            ce, kl, rank = L.candidate_losses(
                hu * scale,
                hpos,
                hcand,
                (hit_rows, hit_cols),
                teacher=teacher_rows,
                ranked=ranked,
                workspace=self.workspace,
            )
        else:
            shift = None
            if self.corrected:  # logQ of each column, subtracted from the CE's logits only
                pos_q = self.pop_logq[i][:, None] if c.in_batch else torch.zeros(len(i), 1, device=dev)
                neg_q = torch.zeros(len(neg), device=dev) if self.exhaustive else self.neg_logq[neg]
                col_q = torch.cat(([self.pop_logq[i]] if c.in_batch else []) + [neg_q])
                shift = torch.cat([pos_q, col_q[None, :].expand(len(i), -1)], dim=1)
            ce, kl, rank, logits = L.losses_by_pieces(
                hu * scale, hpos, hcand, (hit_rows, hit_cols), teacher=teacher_rows, ranked=ranked, ce_shift=shift
            )
            if c.w_bpr:
                hit_mask = None
                if len(hit_rows):
                    hit_mask = torch.zeros(logits.shape[0], logits.shape[1] - 1, dtype=torch.bool, device=dev)
                    hit_mask[hit_rows, hit_cols] = True
                parts["bpr"] = c.w_bpr * L.bpr(logits, hit_mask)
        if c.w_softmax:
            parts["softmax"] = c.w_softmax * ce
        if use_distill:
            parts["distill"] = c.w_distill * kl
        if ranked is not None:
            parts["rank"] = c.w_rank * rank
        h_both = torch.cat([hu, hpos])
        if c.w_quant:
            parts["quant"] = c.w_quant * L.quantization(h_both)
        if c.w_balance:
            parts["balance"] = c.w_balance * (L.bit_balance(hu) + L.bit_balance(hcand)) / 2
        if c.w_decor:
            parts["decor"] = c.w_decor * (L.decorrelation(hu) + L.decorrelation(hcand)) / 2
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged at epoch {self.epoch}, step {self.steps + 1}: loss is {float(loss.detach())} "
                f"({', '.join(f'{k} {float(v.detach()):.4g}' for k, v in parts.items())}); "
                "lower --lr or raise --tau"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
        with torch.no_grad():
            self.towers.log_tau.clamp_(np.log(1e-3), np.log(10.0))
        out = {k: float(v.detach()) for k, v in parts.items()}
        out["loss"] = float(loss.detach())
        return out

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.towers.propagated(self.adjacency, self.config.graph_layers)

    def validate(self) -> float:
        tables = None
        if self.adjacency is not None:
            with torch.no_grad():
                tables = self._tables()
        uz, iz = all_floats(self.towers, self.train, self.device, tables=tables)
        return hamming_recall(binarize(uz), binarize(iz), self.valid, self.train, self.config.eval_k)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> list[EpochLog]:
        """Train until the stopping rule of :class:`TrainConfig` fires; restore the best epoch.

        ``stop_reason`` tells which rule stopped it (``patience``, ``epoch cap``, ``time cap``,
        ``callback``); without validation data every epoch up to the cap runs."""
        c = self.config
        from tqdm.auto import tqdm

        start = time.perf_counter()
        best_score, best_state, bad = -1.0, None, 0
        beta = c.beta
        if self.valid is not None:  # epoch 0: the initialisation itself (e.g. ITQ-rotated teacher)
            t0 = time.perf_counter()
            best_score = self.validate()
            best_state = copy.deepcopy(self.towers.state_dict())
            log0 = EpochLog(
                0,
                float("nan"),
                {},
                best_score,
                beta,
                float(self.towers.tau.detach()),
                time.perf_counter() - t0,
                0.0,
                True,
            )
            self.history.append(log0)
            for cb in self.callbacks:
                cb(log0)
        self.stop_reason = "epoch cap"
        # advanced by hand after each epoch, with that epoch's numbers: the bar counts the epochs
        # trained (iterating over it would count an epoch when the next one starts, so a fit
        # stopped early would end on one epoch less than it trained)
        logger.info(
            "training: at most %d epochs, batches of %d against %d negatives",
            self.epoch_cap,
            c.batch_size,
            self.n_negatives,
        )
        bar = tqdm(total=self.epoch_cap, desc="fit", unit="epoch", disable=not c.progress, leave=False)
        for epoch in range(1, self.epoch_cap + 1):
            self.epoch = epoch
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
                extra={"lr": float(self.optimizer.param_groups[0]["lr"])},
            )
            if score is not None and score > best_score:
                best_score, bad, log.best = score, 0, True
                best_state = copy.deepcopy(self.towers.state_dict())
            elif score is not None:
                bad += 1
                if c.lr_schedule == "plateau":
                    self.plateau_scale *= 0.5
            self.history.append(log)
            post = {"loss": f"{log.loss:.4f}", "inter/s": f"{log.interactions_per_s:,.0f}"}
            if score is not None:
                post[f"valid R@{c.eval_k}"] = f"{score:.4f}"
                post["best"] = f"{best_score:.4f}"
            bar.update(1)
            bar.set_postfix(post)  # redraws: every epoch is shown, however short
            logger.info(
                "epoch %d/%d: %s (%.1fs)",
                epoch,
                self.epoch_cap,
                ", ".join(f"{k} {v}" for k, v in post.items()),
                log.seconds,
            )
            stop = False
            for cb in self.callbacks:
                stop = bool(cb(log)) or stop
            beta = min(beta * c.beta_growth, max(c.beta_max, c.beta))
            if stop:
                self.stop_reason = "callback"
            elif score is not None and bad >= c.patience:
                self.stop_reason = "patience"
            elif c.max_seconds is not None and time.perf_counter() - start >= c.max_seconds and epoch < self.epoch_cap:
                self.stop_reason = "time cap"
            else:
                continue
            break
        bar.close()
        if best_state is not None:
            self.towers.load_state_dict(best_state)
        if self.adjacency is not None:
            self.towers.bake_propagation(self.adjacency, c.graph_layers)
        return self.history
