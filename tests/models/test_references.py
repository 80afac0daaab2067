"""Model references: every accepted form, and names that could reach a path or a shell."""

from __future__ import annotations

import pytest

from featurehub.models import ModelError, ModelRef, parse_reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ModelRef("churn")),
        ("churn:3", ModelRef("churn", version=3)),
        ("churn@production", ModelRef("churn", alias="production")),
        ("models:/churn@champion", ModelRef("churn", alias="champion")),
        ("models:/churn/12", ModelRef("churn", version=12)),
        ("models:/churn", ModelRef("churn")),
    ],
)
def test_accepted_forms(text: str, expected: ModelRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../etc/passwd",
        "churn;rm -rf /",
        "churn$(id)",
        "churn:0",
        "churn:-1",
        "churn:abc",
        "churn@",
        "churn@prod/../x",
        "models:/churn/x",
        "models:/../churn/1",
        "a b",
        "x" * 129,
    ],
)
def test_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ModelError, match=r"NAME:VERSION|NAME@ALIAS|empty"):
        parse_reference(text)


def test_str_round_trips() -> None:
    for text in ("churn", "churn:3", "churn@staging"):
        assert str(parse_reference(text)) == text
