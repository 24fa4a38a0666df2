"""A LightGBM model's trees, read from its text format and evaluated by a compiled kernel.

Serving a learned re-ranker needs only the sum of each tree's leaf for a feature row. Reading
LightGBM's text model (``Booster.model_to_string()``) into flat arrays keeps LightGBM out of
the serving process: loading executes nothing, one user's pool is scored on the calling
thread without starting an OpenMP pool (a LightGBM pool inherited by a forked process hangs
it: the candidate job's workers, a crash-test harness), and the raw scores equal LightGBM's
``predict(raw_score=True)`` (tested). Numerical splits only (``x <= threshold`` goes left;
NaN and, for zero-as-missing trees, zero take the default side); categorical splits are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rechash.errors import ModelError

_DEFAULT_LEFT, _MISSING_ZERO, _MISSING_NAN = 2, 1, 2


@dataclass(frozen=True)
class Trees:
    """The additive trees of one LightGBM model (one output, numerical splits).

    Per tree ``t``, nodes ``node_start[t]:node_start[t + 1]`` and leaves
    ``leaf_start[t]:leaf_start[t + 1]``; a child ``c >= 0`` is a node, ``c < 0`` the leaf ``~c``."""

    text: str
    feature_names: tuple[str, ...]
    feature: np.ndarray
    threshold: np.ndarray
    decision: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    node_start: np.ndarray
    leaf_start: np.ndarray

    @property
    def n_trees(self) -> int:
        return len(self.leaf_start) - 1

    @classmethod
    def from_text(cls, text: str, source: str) -> Trees:
        """Parse a LightGBM text model; anything else raises :class:`ModelError` naming ``source``."""
        try:
            head, *blocks = text.split("\nTree=")
            fields = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
            if not head.startswith("tree") or int(fields.get("num_class", "1")) != 1:
                raise ValueError("not a one-output LightGBM tree model")
            names = tuple(fields["feature_names"].split())
            parts: dict[str, list[np.ndarray]] = {
                k: [] for k in ("feature", "threshold", "decision", "left", "right", "leaf")
            }
            node_start, leaf_start = [0], [0]
            for block in blocks:
                block = block.split("\nend of trees")[0]
                t = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
                n_leaves = int(t["num_leaves"])
                if int(t.get("num_cat", "0")):
                    raise ValueError("categorical splits are not supported")
                leaves = np.array(t["leaf_value"].split(), dtype=np.float64)
                if len(leaves) != n_leaves:
                    raise ValueError(f"a tree with {len(leaves)} leaf values for {n_leaves} leaves")
                n_nodes = n_leaves - 1
                arrays = {
                    "feature": np.int32,
                    "threshold": np.float64,
                    "decision": np.int8,
                    "left": np.int32,
                    "right": np.int32,
                }
                keys = {
                    "feature": "split_feature",
                    "decision": "decision_type",
                    "left": "left_child",
                    "right": "right_child",
                    "threshold": "threshold",
                }
                for name, dtype in arrays.items():
                    values = np.array(t[keys[name]].split() if n_nodes else [], dtype=dtype)
                    if len(values) != n_nodes:
                        raise ValueError(f"{keys[name]} has {len(values)} entries for {n_nodes} nodes")
                    parts[name].append(values)
                parts["leaf"].append(leaves)
                node_start.append(node_start[-1] + n_nodes)
                leaf_start.append(leaf_start[-1] + n_leaves)
            cat = np.concatenate
            trees = cls(
                text,
                names,
                cat(parts["feature"]),
                cat(parts["threshold"]),
                cat(parts["decision"]),
                cat(parts["left"]),
                cat(parts["right"]),
                cat(parts["leaf"]),
                np.array(node_start, dtype=np.int64),
                np.array(leaf_start, dtype=np.int64),
            )
            trees._check()
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelError(f"{source}: not a LightGBM text model ({exc})") from None
        return trees

    def _check(self) -> None:
        """Indices in range (a malformed file must not make the kernel read out of bounds)."""
        if not self.n_trees:
            raise ValueError("no trees")
        if (self.decision & 1).any():
            raise ValueError("categorical splits are not supported")
        if len(self.feature) and (self.feature.min() < 0 or self.feature.max() >= len(self.feature_names)):
            raise ValueError("a split on a feature the model does not name")
        for t in range(self.n_trees):
            n_nodes = self.node_start[t + 1] - self.node_start[t]
            n_leaves = self.leaf_start[t + 1] - self.leaf_start[t]
            for child in (
                self.left[self.node_start[t] : self.node_start[t + 1]],
                self.right[self.node_start[t] : self.node_start[t + 1]],
            ):
                if len(child) and (child.max() >= n_nodes or (~child[child < 0]).max(initial=0) >= n_leaves):
                    raise ValueError(f"tree {t}: a child out of range")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (sum of leaf values) of the rows of ``x`` ``(n, n_features)``, float64."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ModelError(f"expected rows of {len(self.feature_names)} features, got shape {x.shape}")
        return _predict(
            x,
            self.feature,
            self.threshold,
            self.decision,
            self.left,
            self.right,
            self.leaf_value,
            self.node_start,
            self.leaf_start,
        )


@numba.njit(cache=True, nogil=True)
def _predict(x, feature, threshold, decision, left, right, leaf_value, node_start, leaf_start):  # pragma: no cover
    out = np.zeros(x.shape[0])
    for r in range(x.shape[0]):
        total = 0.0
        for t in range(leaf_start.shape[0] - 1):
            base, leaves = node_start[t], leaf_start[t]
            if node_start[t + 1] == base:  # a one-leaf tree
                total += leaf_value[leaves]
                continue
            node = 0
            while True:
                i = base + node
                v = x[r, feature[i]]
                missing = (decision[i] >> 2) & 3
                if (missing == _MISSING_NAN and np.isnan(v)) or (
                    missing == _MISSING_ZERO and (v == 0.0 or np.isnan(v))
                ):
                    go_left = (decision[i] & _DEFAULT_LEFT) != 0
                else:
                    go_left = v <= threshold[i]
                child = left[i] if go_left else right[i]
                if child < 0:
                    total += leaf_value[leaves + ~child]
                    break
                node = child
        out[r] = total
    return out
