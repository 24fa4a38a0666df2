"""Every training hyper-parameter of the twin towers: :class:`TrainConfig`.

Kept free of torch and numpy at import (it imports :mod:`rechash.errors` only) so that ``rechash fit``
can generate its options from the fields without loading the model stack: ``rechash --help``
stays fast. :mod:`rechash.hasher.trainer` re-exports it (``rechash.hasher.TrainConfig``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from rechash.errors import ConfigError

#: clamps (and step) of the default number of sampled negatives (:meth:`TrainConfig.n_negatives`)
MIN_NEGATIVES, MAX_NEGATIVES = 512, 4096


def _opt(default, help: str, **meta):
    """A TrainConfig field with its command-line help (``rechash fit`` derives its options from these)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """Every training hyper-parameter (saved in the model directory; ``rechash fit --NAME`` sets each).

    Rules that follow from the data rather than from one tuned dataset:

    - **How long**: training runs until validation Recall@``eval_k`` of the binary codes has
      not improved for ``patience`` epochs (the best epoch is restored), the lr halving after
      every epoch without improvement (``lr_schedule="plateau"``). The epoch cap is
      ``clamp(ceil(epoch_updates / d), min_epochs_cap, max_epochs_cap)`` with ``d`` the mean
      number of training interactions per user: every user's ID row gets about
      ``epoch_updates`` positive updates before the cap, so a sparse catalog (few interactions
      per user) gets more epochs than a dense one. The cap is a bound, not a budget: it is set
      high enough that patience, not the cap, ends a default fit (a cap that is too low stops a
      fit whose validation recall is still rising). ``max_seconds`` caps the wall clock
      (checked after every epoch). Without validation data the hasher holds out a sample of
      train (:func:`rechash.hasher.sampling.holdout_mask`).
    - **Candidates per interaction**: a batch of 1024 training interactions is scored against
      ``negatives`` shared sampled items; by default the largest multiple of 512 at most
      ``epoch_logits / interactions``, clamped to 512..4096 (``n_negatives``), and every item
      once when the catalog is no larger (an exact softmax). More candidates give better
      Hamming-only recall (experiments/results/codes.md) while a step's cost is linear in them,
      so a fixed budget of ``epoch_logits`` per epoch spends many candidates on a small
      dataset and fewer on a large one, bounding the time of an epoch
      (experiments/results/bench_fit.md).
    - **Teacher**: see :func:`rechash.als.teacher.default_teacher`.
    - **User codes** (``refine``): after training, each user's code is refined by bit flips toward
      the teacher's top-``eval_k`` list against the fixed item codes, at the temperature that
      validation picks, and kept only when validation Recall@``eval_k`` (Hamming only) rises
      (:mod:`rechash.hasher.refine`).
    """

    epochs: int | None = _opt(None, "Epoch cap (default: from the data's density, see --epoch-updates).")
    epoch_updates: int = _opt(2000, "Default epoch cap: ceil(this / mean interactions per user), clamped.")
    min_epochs_cap: int = _opt(10, "Lower clamp of the default epoch cap.")
    max_epochs_cap: int = _opt(200, "Upper clamp of the default epoch cap.")
    max_seconds: float | None = _opt(None, "Wall-clock cap of training in seconds (checked after every epoch).")
    patience: int = _opt(3, "Stop after this many epochs without a better validation Recall@20.")
    batch_size: int = _opt(1024, "Training interactions per optimizer step.")
    lr: float = _opt(0.01, "Adam learning rate (peak).")
    lr_schedule: str = _opt(
        "plateau",
        "plateau (halve after an epoch without improvement), cosine, linear or constant.",
        choices=("plateau", "cosine", "linear", "constant"),
    )
    lr_final: float = _opt(0.1, "Final lr as a share of --lr (cosine and linear decay over the epoch cap).")
    negatives: int | None = _opt(
        None,
        "Sampled negatives shared by a batch (default: from the data's size, see --epoch-logits; "
        "at least the number of items: every item once).",
    )
    epoch_logits: int = _opt(
        2**30, "Default negatives: the largest multiple of 512 <= this / training interactions, in 512..4096."
    )
    negative_sampling: str = _opt("uniform", "uniform or popularity.", choices=("uniform", "popularity"))
    negative_power: float = _opt(1.0, "Exponent of popularity sampling.")
    in_batch: bool = _opt(False, "Use the batch's positives as negatives too.")
    logq: bool = _opt(True, "logQ correction of non-uniform negatives.")
    tau: float = _opt(0.1, "Softmax temperature (logits = s / tau, s in [-1, 1]).")
    learn_tau: bool = _opt(
        False, "Learn the temperature (off by default: it sharpens the softmax and hurts the codes)."
    )
    relaxation: str = _opt(
        "tanh", "tanh (continuation with --beta-growth) or ste (straight-through sign).", choices=("tanh", "ste")
    )
    beta: float = _opt(1.0, "Initial beta of tanh(beta z).")
    beta_growth: float = _opt(1.0, "Per-epoch factor on beta (continuation when > 1).")
    beta_max: float = _opt(1.0, "Largest beta.")
    w_softmax: float = _opt(1.0, "Weight of the sampled-softmax pairwise loss.")
    w_bpr: float = _opt(0.0, "Weight of the BPR pairwise loss.")
    w_quant: float = _opt(0.0, "Weight of the quantization loss mean((|h| - 1)^2).")
    w_balance: float = _opt(0.0, "Weight of the bit-balance loss.")
    w_decor: float = _opt(0.0, "Weight of the bit-decorrelation loss.")
    w_distill: float = _opt(1.0, "Weight of the teacher's softmax distillation over the sampled candidates.")
    teacher_tau: float = _opt(0.1, "Temperature of the teacher's softmax over the sampled candidates.")
    w_rank: float = _opt(1.0, "Weight of ranking distillation of the teacher's top-R unseen items.")
    rank_r: int = _opt(50, "R of ranking distillation: the teacher's top-R unseen items per user.")
    rank_decay: float = _opt(
        10.0, "Rank decay of ranking distillation: item at rank r drawn with weight exp(-r / this)."
    )
    refine: bool = _opt(
        True,
        "Refine the user codes by bit flips toward the teacher's top-K against the fixed item codes "
        "(kept when validation Recall@K rises; needs a teacher and validation data).",
    )
    learned_rerank: bool = _opt(
        True,
        "Train the learned re-ranker (LightGBM over each validation user's Hamming pool; "
        "kept, and the default re-ranker, when it beats the dot re-ranker on held-out validation users).",
    )
    graph_layers: int = _opt(0, "LightGCN propagation layers of the ID embeddings over the training graph (0: off).")
    init: str = _opt("teacher", "teacher (ITQ-rotated teacher factors) or random.", choices=("teacher", "random"))
    init_scale: float | None = _opt(None, "rms of the initial z (default 1.0 from a teacher, 0.1 at random).")
    id_dropout: float = _opt(0.0, "Share of rows trained through the history path only.")
    item_id_dropout: float = _opt(
        0.0,
        "Share of item rows trained through the item-feature path only (with item features): "
        "trains the codes that items added later by their features get (rechash add-items).",
    )
    history_cap: int = _opt(32, "History items sampled per training row.")
    eval_k: int = _opt(20, "K of the validation Recall@K that early stopping watches.")
    eval_users: int = _opt(10_000, "Validation users early stopping scores (a fixed sample when there are more).")
    threads: int | None = _opt(None, "torch CPU threads (default: all cores).")
    device: str = _opt("auto", "auto, cpu or cuda.")
    progress: bool = _opt(True, "Progress bar.")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every range before any data is read; errors name the option (``--name``)."""
        import math

        def bad(name: str, expected: str) -> None:
            raise ConfigError(f"--{name.replace('_', '-')}: expected {expected}, got {getattr(self, name)!r}")

        def number(
            name: str, low: float, *, strict: bool = True, integer: bool = False, optional: bool = False
        ) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or (integer and int(v) != v)
                or not math.isfinite(v)
            ):
                bad(name, f"a finite {'integer' if integer else 'number'}")
            if v < low or (strict and v == low):
                bad(name, f"{'>' if strict else '>='} {low}")

        for name in ("epochs", "max_seconds"):
            number(name, 0, integer=name == "epochs", optional=True)
        for name in (
            "epoch_updates",
            "min_epochs_cap",
            "max_epochs_cap",
            "batch_size",
            "history_cap",
            "eval_k",
            "eval_users",
            "rank_r",
            "epoch_logits",
        ):
            number(name, 0, integer=True)
        number("threads", 0, integer=True, optional=True)
        number("patience", 0, integer=True)
        number("negatives", 0, strict=False, integer=True, optional=True)
        number("graph_layers", 0, strict=False, integer=True)
        for name in ("lr", "tau", "teacher_tau", "beta", "beta_growth", "beta_max", "rank_decay", "negative_power"):
            number(name, 0)
        number("init_scale", 0, optional=True)
        for name in ("lr_final", "w_softmax", "w_bpr", "w_quant", "w_balance", "w_decor", "w_distill", "w_rank"):
            number(name, 0, strict=False)
        if not 0 <= self.id_dropout < 1:
            bad("id_dropout", "a share in [0, 1)")
        if not 0 <= self.item_id_dropout < 1:
            bad("item_id_dropout", "a share in [0, 1)")
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                bad(f.name, " or ".join(choices))
        if self.w_softmax == 0 and self.w_bpr == 0:
            raise ConfigError("--w-softmax and --w-bpr are both 0: training needs a pairwise loss")

    def to_dict(self) -> dict:
        return asdict(self)

    def n_epochs(self, n_users: int, nnz: int) -> int:
        """The epoch cap: ``epochs``, or the density rule of the class docstring when None."""
        import numpy as np  # here, not at import: the CLI reads this module for every command

        if self.epochs is not None:
            return int(self.epochs)
        density = nnz / max(n_users, 1)
        return int(np.clip(np.ceil(self.epoch_updates / max(density, 1e-9)), self.min_epochs_cap, self.max_epochs_cap))

    def n_negatives(self, nnz: int) -> int:
        """Sampled negatives per batch: ``negatives``, or the budget rule of the class docstring when None."""
        if self.negatives is not None:
            return int(self.negatives)
        fit = self.epoch_logits // max(int(nnz), 1) // MIN_NEGATIVES * MIN_NEGATIVES
        return min(max(fit, MIN_NEGATIVES), MAX_NEGATIVES)
