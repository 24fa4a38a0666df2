"""User codes refined against the fixed item codes: greedy bit flips toward the teacher's top-K.

The towers learn relaxed codes ``tanh(z)`` and the binary code is their sign; taking the sign
of the *user* side loses the most (the user's floats against the item bits rank better than
the user's bits do). Once the item codes are fixed, the best user code for Hamming
retrieval is a discrete problem over ``2^B`` codes that a few bit flips solve well: starting
from ``sign(z_u)``, each step flips the one bit that most raises

    sum_r w_r log softmax_i(<b_u, b_i> / T)[t_r]

over the user's unseen items, where ``t_1..t_K`` is the teacher's top-K unseen list (``K`` the
validation cutoff ``eval_k``) with DCG weights ``w_r ~ 1 / log2(r + 1)``; it stops when no flip
raises it. Flipping bit j moves every item's score by +-2, so the log-partition after each of
the ``B`` candidate flips comes from one product of the current softmax numerators with the
item bits: a step costs one ``(users x pool) x (pool x B)`` product for all ``B`` flips. The
softmax runs over the user's ``pool`` nearest unseen items by the starting code plus the
targets (the items a few flips can bring into the top K), so a step's cost does not grow with
the catalog.

The temperature ``T`` is picked on validation among :data:`TEMPERATURES`, and the refinement
is kept only when it raises validation Hamming-only Recall@K over the towers' codes
(:func:`choose_refinement`); codes already close to the teacher's ranking may gain nothing,
and then the towers' codes are kept. Measurements: ``experiments/results/codes.md``.

The refined codes serve a top-K list: deeper in the Hamming order they may hold fewer
relevant items than the towers' codes, so a re-ranker's pool is drawn with the towers' codes
(:meth:`rechash.models.code.CodeRecommender.from_model`).

Users folded in at serving time (:meth:`rechash.hasher.twin_tower.TwinTowerHasher.encode_new_users`) are
refined at the kept temperature toward the teacher's top-K *within their Hamming pool*, the
pool and targets redrawn around the refined code for a second round (:func:`pool_refined_codes`):
the teacher scores the pool, not the catalog (experiments/results/new_users.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from rechash.codes.bits import binarize, to_signs
from rechash.hasher.trainer import hamming_recall, hamming_topk, teacher_top_items

#: the temperatures :func:`choose_refinement` tries, the best on validation kept
TEMPERATURES = (3.0, 4.0, 6.0)
#: the share of :func:`refine_user_codes`' working set that must have stopped flipping before
#: the stopped rows are dropped from it (a speed setting only: the codes do not depend on it)
COMPACT_AT = 0.5


def dcg_weights(k: int) -> np.ndarray:
    """``1 / log2(r + 1)`` for ranks ``r = 1..k``, summing to 1."""
    w = 1.0 / np.log2(np.arange(2, k + 2))
    return w / w.sum()


def refine_user_codes(
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    targets: np.ndarray,
    seen: sp.csr_matrix,
    temperature: float,
    pool: int = 1024,
    max_flips: int | None = None,
    batch: int = 512,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Greedy bit flips of packed ``user_codes`` (``(n, B/8)``) against fixed packed ``item_codes``.

    ``targets``: ``(n, K)`` item ids, best first, -1 padded (the teacher's top-K unseen items);
    ``seen``: the ``(n, m)`` training items, never candidates. The softmax runs over the user's
    ``pool`` nearest unseen items by the starting code plus the targets (the items a few flips
    can bring into the top K); ``candidates``: that pool already drawn, ``(n, P)`` item ids
    outside ``seen``, -1 padded (``pool`` is then unused). At most ``max_flips`` (default ``B``)
    flips per user. Returns the refined packed codes and the number of flips made. Users without
    a target keep their code."""
    b_all = torch.from_numpy(to_signs(user_codes))
    if candidates is None:
        items = torch.from_numpy(to_signs(item_codes))
    else:  # the pools are given: unpack their items' codes only, not the catalog's
        candidates, targets, used = _local_ids(candidates, targets)
        items = torch.from_numpy(to_signs(item_codes[used]))
    n, bits = b_all.shape
    max_flips = bits if max_flips is None else max_flips
    t = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
    has_target = (t >= 0).any(1)
    w = torch.from_numpy(dcg_weights(t.shape[1]).astype(np.float32)).expand_as(t) * (t >= 0)
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
    # (n, B): the linear term's change under flip j is b_j lin_j, lin = -2 pB / T with pB the weighted target codes
    lin = -2.0 * (w.unsqueeze(2) * items[t.clamp_min(0)]).sum(1) / temperature
    pool = min(pool, items.shape[0])
    down, up = float(np.exp(-2.0 / temperature)), float(np.exp(2.0 / temperature))
    flips = 0
    with torch.inference_mode():
        for s in range(0, n, batch):
            rows = torch.arange(s, min(s + batch, n))[has_target[s : s + batch]]
            if len(rows) == 0:
                continue
            ts = t[rows]
            if candidates is None:
                cand = torch.from_numpy(hamming_topk(user_codes, item_codes, rows.numpy(), pool, seen)[0])
            else:
                cand = torch.from_numpy(np.ascontiguousarray(candidates[rows.numpy()], dtype=np.int64))
            cand = torch.where((cand.unsqueeze(2) == ts.unsqueeze(1)).any(2), -1, cand)  # targets once
            cand = torch.cat([cand, ts], 1)
            live = (cand >= 0).float()
            codes = items[cand.clamp_min(0)]  # (b, P, B)
            b, lb = b_all[rows], lin[rows]
            logits = torch.einsum("bj,bpj->bp", b, codes) / temperature
            # the rows in the working set; a row that stops stays in it, unchanged (its gains do not
            # change, so it stays stopped), until at least COMPACT_AT of the set has stopped: copying
            # the (b, P, B) codes at every stop costs more than the steps it saves
            active = torch.arange(len(rows))
            for _ in range(max_flips):
                e = torch.exp(logits - logits.amax(1, keepdim=True)) * live
                total = e.sum(1, keepdim=True)
                agree = (total + b * torch.einsum("bp,bpj->bj", e, codes)) / 2  # mass whose bit j equals b_j
                gain = b * lb - torch.log((down * agree + up * (total - agree)) / total)
                best, j = gain.max(1)
                go = best > 1e-6
                if not go.any():
                    break
                if (~go).sum() >= COMPACT_AT * len(go):
                    b_all[rows[active[~go]]] = b[~go]
                    active, j, logits, live, codes, b, lb = (x[go] for x in (active, j, logits, live, codes, b, lb))
                    go = torch.ones(len(active), dtype=torch.bool)
                r = torch.nonzero(go).squeeze(1)
                jr = j[r]
                old = b[r, jr].clone()
                b[r, jr] = -old
                logits[r] -= (2.0 / temperature) * old.unsqueeze(1) * codes[r, :, jr]
                flips += len(r)
            b_all[rows[active]] = b
    return binarize(b_all.numpy()), flips


def _local_ids(candidates: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``candidates`` and ``targets`` renumbered into ``used``, the sorted item ids they hold
    (item 0 always among them, so a -1 pad gathers the same row as before), -1 kept."""
    used = np.unique(np.concatenate([np.ravel(candidates), np.ravel(targets), [0]]))
    used = used[used >= 0]

    def local(ids: np.ndarray) -> np.ndarray:
        return np.where(ids >= 0, np.searchsorted(used, ids), -1)

    return local(candidates), local(targets), used


def choose_refinement(
    user_z: np.ndarray,
    item_z: np.ndarray,
    teacher: tuple[np.ndarray, np.ndarray],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    k: int,
) -> tuple[float | None, dict]:
    """The temperature whose refined codes score the best validation Recall@``k`` (Hamming only,
    ``train`` items excluded) on the users with a ``valid`` item, or None when none beats the
    towers' codes ``sign(user_z)``; and a record of the scores (saved as ``training_run.refine``)."""
    users = np.flatnonzero(np.diff(valid.indptr))
    seen, truth = train[users], valid[users]
    start, item_codes = binarize(user_z[users]), binarize(item_z)
    targets = teacher_top_items(teacher[0][users], teacher[1], seen, k)
    scores = {"none": hamming_recall(start, item_codes, truth, seen, k)}
    for t in TEMPERATURES:
        refined, _ = refine_user_codes(start, item_codes, targets, seen, t)
        scores[str(t)] = hamming_recall(refined, item_codes, truth, seen, k)
    best = max(TEMPERATURES, key=lambda t: scores[str(t)])
    chosen = best if scores[str(best)] > scores["none"] else None
    return chosen, {"temperature": chosen, "valid_recall": scores, "users": len(users)}


def refined_user_codes(
    user_z: np.ndarray,
    item_z: np.ndarray,
    teacher: tuple[np.ndarray, np.ndarray],
    seen: sp.csr_matrix,
    k: int,
    temperature: float,
) -> tuple[np.ndarray, float]:
    """Packed refined codes of every row of ``user_z`` (targets: the teacher's top-``k`` items
    outside ``seen``) and the mean number of bits flipped per user."""
    targets = teacher_top_items(teacher[0], teacher[1], seen, k)
    refined, flips = refine_user_codes(binarize(user_z), binarize(item_z), targets, seen, temperature)
    return refined, flips / max(len(refined), 1)


def pool_refined_codes(
    user_z: np.ndarray,
    item_codes: np.ndarray,
    teacher: tuple[np.ndarray, np.ndarray],
    seen: sp.csr_matrix,
    k: int,
    temperature: float,
    pool: int = 1024,
    rounds: int = 2,
    batch: int = 512,
) -> tuple[np.ndarray, float]:
    """As :func:`refined_user_codes` (``item_codes`` packed), but the targets are the teacher's top-``k`` within each
    user's Hamming pool (the ``pool`` nearest items outside ``seen`` by the current code, which
    is also the softmax pool of :func:`refine_user_codes`), so the teacher scores ``pool`` items
    per user, not the catalog: the path for users folded in at serving time. Each of ``rounds``
    rounds redraws the pool and the targets around the code the last round refined (the first
    round starts from ``sign(user_z)``; a round without a flip ends it). Teacher ties go to the
    nearer pool item. Returns the packed refined codes and the mean number of flips per user."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    codes = binarize(user_z)
    seen, items = sp.csr_matrix(seen), np.asarray(teacher[1], dtype=np.float32)
    out, flips = np.empty_like(codes), 0
    for s in range(0, len(codes), batch):
        c, rows = codes[s : s + batch], seen[s : s + batch]
        u = np.ascontiguousarray(teacher[0][s : s + batch], dtype=np.float32)
        for _ in range(rounds):
            cand = hamming_topk(c, item_codes, np.arange(len(c)), min(pool, len(item_codes)), rows)[0]
            scores = np.einsum("nd,npd->np", u, items[np.maximum(cand, 0)])
            scores[cand < 0] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            targets = np.where(np.take_along_axis(scores, order, 1) > -np.inf, np.take_along_axis(cand, order, 1), -1)
            c, f = refine_user_codes(c, item_codes, targets, rows, temperature, candidates=cand)
            flips += f
            if not f:
                break
        out[s : s + batch] = c
    return out, flips / max(len(codes), 1)
