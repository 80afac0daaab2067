"""Saved training datasets: named, immutable, fingerprinted, profiled (docs/datasets.md)."""

from featurehub.datasets.dataset import Dataset
from featurehub.datasets.profile import FeatureProfile
from featurehub.datasets.store import Datasets

__all__ = ["Dataset", "Datasets", "FeatureProfile"]
