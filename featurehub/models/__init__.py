"""The model registry: versions tied to a feature service and a saved training set,
stages as aliases, a production gate, artifacts checked before every load (docs/models.md)."""

from featurehub.models.artifacts import ArtifactError
from featurehub.models.gates import GateCheck, GateRefusedError, GateReport
from featurehub.models.loaded import LoadedModel, ModelPredictError
from featurehub.models.references import ModelRef, parse_reference
from featurehub.models.scoring import ScoreResult
from featurehub.models.store import Models
from featurehub.registry.models import (
    HistoryEvent,
    ModelError,
    ModelNotFoundError,
    ModelVersion,
    Signature,
)

__all__ = [
    "ArtifactError",
    "GateCheck",
    "GateRefusedError",
    "GateReport",
    "HistoryEvent",
    "LoadedModel",
    "ModelError",
    "ModelNotFoundError",
    "ModelPredictError",
    "ModelRef",
    "ModelVersion",
    "Models",
    "ScoreResult",
    "Signature",
    "parse_reference",
]
