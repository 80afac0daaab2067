"""Model references, the one syntax wherever a model is named (API, CLI, later the server).

    NAME                    the latest version
    NAME:VERSION            a version number        models:/NAME/VERSION   the same
    NAME@ALIAS              the version an alias    models:/NAME@ALIAS     the same
                            (production, staging, champion) points at

Names and aliases follow featurehub's one name rule (`featurehub.definitions.names`): no
path separators, dots or shell metacharacters can reach a path or a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError
from featurehub.registry.models import ModelError

_PREFIX = "models:/"
_FORMS = "NAME, NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION or models:/NAME@ALIAS"
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a name and at most one of a version and an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def check_model_name(name: str) -> str:
    try:
        return check_name("model", name)
    except DefinitionError as exc:
        raise ModelError(str(exc)) from None


def parse_reference(text: str) -> ModelRef:
    """A ModelRef, or a ModelError that shows the accepted forms."""
    if not isinstance(text, str) or not text:
        raise ModelError(f"model reference {text!r} is empty; write {_FORMS}")
    body = text[len(_PREFIX) :] if text.startswith(_PREFIX) else text
    name, version, alias = body, None, None
    if "@" in body:
        name, _, alias = body.partition("@")
    elif text.startswith(_PREFIX) and "/" in body:
        name, _, version = body.partition("/")
    elif not text.startswith(_PREFIX) and ":" in body:
        name, _, version = body.partition(":")
    if version is not None and not _VERSION.match(version):
        raise ModelError(
            f"model reference {text!r}: version {version!r} is not a positive number; "
            f"write {_FORMS}"
        )
    try:
        check_name("model", name)
        if alias is not None:
            check_name("alias", alias)
    except DefinitionError as exc:
        raise ModelError(f"model reference {text!r}: {exc}; write {_FORMS}") from None
    return ModelRef(name, None if version is None else int(version), alias)
