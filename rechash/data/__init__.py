"""Data layer: loaders, IdMap, Interactions, side features, splits, synthetic data, named datasets."""

from rechash.data.features import Feature, SideFeatures, load_side_features
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.data.loaders import FORMATS, detect_format, load, load_many, load_split, save
from rechash.data.splits import (
    Split,
    k_core,
    save_split,
    split_leave_last,
    split_random,
    split_time,
    to_implicit,
)
from rechash.data.synthetic import synthetic, synthetic_split

__all__ = [
    "FORMATS",
    "Feature",
    "IdMap",
    "Interactions",
    "SideFeatures",
    "Split",
    "detect_format",
    "k_core",
    "load",
    "load_many",
    "load_side_features",
    "load_split",
    "save",
    "save_split",
    "split_leave_last",
    "split_random",
    "split_time",
    "synthetic",
    "synthetic_split",
    "to_implicit",
]
