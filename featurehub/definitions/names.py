"""The one rule for names of entities, sources, views, features and services."""

from __future__ import annotations

import re

from featurehub.errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_name(kind: str, name: object) -> str:
    """Return `name` when it is a valid identifier, else raise an error that says the rule.

    Names end up as SQL identifiers, Parquet columns, Redis keys and URL parts, so one
    conservative rule (a Python identifier, at most 128 characters) keeps all of them safe.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"{kind} name {name!r} is invalid: use letters, digits and underscores, "
            "starting with a letter or underscore (at most 128 characters)"
        )
    return name
