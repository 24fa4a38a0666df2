"""Code diagnostics: bit usage, bit correlations, collisions, user-item Hamming distances."""

from __future__ import annotations

import numpy as np

from rechash.codes.bits import hamming_distances, to_signs, validate_packed


def code_diagnostics(user_codes: np.ndarray, item_codes: np.ndarray, sample_users: int = 512, seed: int = 0) -> dict:
    """Summary of packed user and item codes (one Hamming space).

    Returns a JSON-friendly dict: per-bit means (of the +-1 signs, 0 = balanced) for users
    and items, the mean / max absolute pairwise bit correlation of item bits, the number of
    distinct item (and user) codes and the largest item collision bucket, and quantiles of
    user-item Hamming distances over a sample of users (all items).
    """
    bits = validate_packed(item_codes, "item codes")
    validate_packed(user_codes, "user codes")
    out: dict = {"bits": bits}
    for name, codes in (("user", user_codes), ("item", item_codes)):
        signs = to_signs(codes, np.float64)
        out[f"{name}_bit_mean"] = signs.mean(axis=0).round(4).tolist()
        out[f"{name}_max_abs_bit_mean"] = float(np.abs(signs.mean(axis=0)).max())
        _, counts = np.unique(codes, axis=0, return_counts=True)
        out[f"{name}_distinct_codes"] = int(len(counts))
        out[f"{name}_largest_bucket"] = int(counts.max())
    signs = to_signs(item_codes, np.float64)
    std = signs.std(axis=0)
    live = std > 0
    corr = np.corrcoef(signs[:, live].T) if live.sum() > 1 else np.zeros((1, 1))
    off = np.abs(corr[~np.eye(len(corr), dtype=bool)]) if len(corr) > 1 else np.zeros(1)
    out["item_bit_corr_mean_abs"] = float(off.mean())
    out["item_bit_corr_max_abs"] = float(off.max())
    out["constant_item_bits"] = int((~live).sum())
    rng = np.random.default_rng(seed)
    users = rng.choice(len(user_codes), size=min(sample_users, len(user_codes)), replace=False)
    d = hamming_distances(user_codes[np.sort(users)], item_codes).ravel()
    qs = (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)
    out["user_item_hamming_quantiles"] = {str(q): float(np.quantile(d, q)) for q in qs}
    out["user_item_hamming_mean"] = float(d.mean())
    return out


def format_diagnostics(diag: dict) -> str:
    """A few human-readable lines of :func:`code_diagnostics` output."""
    q = diag["user_item_hamming_quantiles"]
    return "\n".join(
        [
            f"bits: {diag['bits']}",
            f"max |bit mean|: users {diag['user_max_abs_bit_mean']:.3f}, items {diag['item_max_abs_bit_mean']:.3f}",
            f"item bit correlation |r|: mean {diag['item_bit_corr_mean_abs']:.3f}, "
            f"max {diag['item_bit_corr_max_abs']:.3f}",
            f"distinct codes: users {diag['user_distinct_codes']:,} (largest bucket {diag['user_largest_bucket']}), "
            f"items {diag['item_distinct_codes']:,} (largest bucket {diag['item_largest_bucket']})",
            "user-item Hamming quantiles: " + ", ".join(f"{k}: {v:g}" for k, v in q.items()),
        ]
    )
