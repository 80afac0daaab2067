"""Errors featurehub raises on purpose.

Every error a user can cause says what is wrong and how to fix it. Backends map their own
exceptions to these at the boundary, so callers catch one family.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeaturehubError(Exception):
    """Base class of every error featurehub raises on purpose."""


class ConfigError(FeaturehubError):
    """featurehub.yaml or an environment override is invalid."""


class RepoLoadError(FeaturehubError):
    """A Python file of the feature repo could not be imported."""


class DefinitionError(FeaturehubError, ValueError):
    """A definition is invalid on its own (bad name, negative TTL, ...)."""


class ValidationError(FeaturehubError):
    """`apply` refused the repo; carries every problem found, not only the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) found, nothing was applied:\n{lines}")


class BreakingChangeError(ValidationError):
    """`apply` would break consumers; re-run with force to accept."""


class NotFoundError(FeaturehubError, KeyError):
    """An object asked for by name does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistryError(FeaturehubError):
    """The registry database could not be read or written."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix naming the closest candidates, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
