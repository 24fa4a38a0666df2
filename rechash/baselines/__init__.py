"""Float baselines: implicit ALS/BPR embeddings, Annoy and exact float search."""
from rechash.baselines.embeddings import FloatEmbeddings
from rechash.baselines.implicit_mf import fit_als, fit_bpr

__all__ = ["FloatEmbeddings", "fit_als", "fit_bpr"]
