"""The model version a skew check is for (`featurehub skew --model REF`,
`store.check_skew(model=REF)`): its lineage decides what is checked.

A version records the feature service it takes and the saved dataset it was trained on
(docs/models.md), so a check of it needs neither: the service is the version's, the
distributions are compared with its training set, and only the log rows it answered are
read (`ModelAnswers`: its name and version on the rows, any arm but shadow). A service or an
`against` that contradicts that lineage is refused rather than half obeyed: the record would
say "version 3 against dataset X" for a comparison the version never stood for. A different
dataset is a check of the service (`featurehub skew SERVICE --against X`), not of a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurehub.skew.distribution_check import SkewCheckError
from featurehub.skew.served_rows import ModelAnswers

if TYPE_CHECKING:
    from featurehub.datasets.dataset import Dataset
    from featurehub.models import Models


@dataclass(frozen=True)
class CheckedModel:
    """A model version as a check was run for it: `reference` as given (an alias such as
    `@production` is resolved to `version` when the check runs)."""

    name: str
    version: int
    reference: str
    feature_service: str
    training_dataset: str
    training_dataset_fingerprint: str

    @property
    def answers(self) -> ModelAnswers:
        return ModelAnswers(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "reference": self.reference,
            "feature_service": self.feature_service,
            "training_dataset": self.training_dataset,
        }


def model_target(
    models: Models, reference: str, feature_service: str | None, against: str | None
) -> CheckedModel:
    """The version `reference` names, with its lineage checked against what was asked:
    `feature_service` and `against`, when given, must be the version's own."""
    version = models.get(reference)
    target = CheckedModel(
        name=version.name,
        version=version.version,
        reference=reference,
        feature_service=version.feature_service,
        training_dataset=version.training_dataset,
        training_dataset_fingerprint=version.training_dataset_fingerprint,
    )
    what = f"model {version.name} version {version.version}"
    if feature_service is not None and feature_service != version.feature_service:
        raise SkewCheckError(
            f"{what} takes feature service {version.feature_service!r}, not "
            f"{feature_service!r}: drop the service (--model names it), or check "
            f"{feature_service!r} without --model"
        )
    if against is not None and against != version.training_dataset:
        raise SkewCheckError(
            f"{what} was trained on dataset {version.training_dataset!r}, not {against!r}: "
            "drop --against (a model's check compares with its training set), or compare "
            f"the service's traffic with it: featurehub skew {version.feature_service} "
            f"--against {against}"
        )
    return target


def check_lineage(target: CheckedModel, dataset: Dataset) -> None:
    """The saved dataset must still be the one the version recorded (its fingerprint)."""
    fingerprint = target.training_dataset_fingerprint
    if dataset.fingerprint != fingerprint:
        raise SkewCheckError(
            f"dataset {dataset.name!r} is not the one model {target.name} version "
            f"{target.version} was trained on: its fingerprint is {dataset.fingerprint}, the "
            f"version recorded {fingerprint} (featurehub models describe {target.name}:"
            f"{target.version})"
        )
