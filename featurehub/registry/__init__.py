"""The SQL registry of definitions, with version history and cacheable reads."""

from featurehub.registry.diff import Plan
from featurehub.registry.sql import RegistryState, SqlRegistry

__all__ = ["Plan", "RegistryState", "SqlRegistry"]
