"""Data layer: loaders, IdMap, Interactions, splits, synthetic data, named datasets."""
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.data.loaders import load, load_many

__all__ = ["IdMap", "Interactions", "load", "load_many"]
