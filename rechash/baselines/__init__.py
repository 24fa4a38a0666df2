"""Float baselines: implicit ALS/BPR embeddings, Annoy and exact float search, one recommender API."""
from rechash.baselines.annoy_index import ANNOY_METRICS, AnnoyItemIndex, AnnoyRecommender, mips_augment
from rechash.baselines.embeddings import FloatEmbeddings
from rechash.baselines.exact import ExactRecommender, PopularityRecommender
from rechash.baselines.implicit_mf import (
    ALS_DEFAULTS,
    ALS_GRID,
    BPR_DEFAULTS,
    BPR_GRID,
    fit_als,
    fit_bpr,
    grid_search,
    tune_als,
    tune_bpr,
)

__all__ = [
    "ALS_DEFAULTS",
    "ALS_GRID",
    "ANNOY_METRICS",
    "AnnoyItemIndex",
    "AnnoyRecommender",
    "BPR_DEFAULTS",
    "BPR_GRID",
    "ExactRecommender",
    "FloatEmbeddings",
    "PopularityRecommender",
    "fit_als",
    "fit_bpr",
    "grid_search",
    "mips_augment",
    "tune_als",
    "tune_bpr",
]
