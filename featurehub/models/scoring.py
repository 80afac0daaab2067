"""Batch scoring: each entity row's point-in-time features (the join training used), then
the model's predictions, written as one Parquet file that appears whole or not at all."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.models.loaded import LoadedModel
from featurehub.offline.parquet import fsync
from featurehub.offline.retrieval import RetrievalJob
from featurehub.registry.models import ModelError

OUTPUT_COLUMNS = ("model", "model_version", "prediction")


@dataclass(frozen=True)
class ScoreResult:
    model: str
    version: int
    rows: int
    path: Path


def predictions_table(model: LoadedModel, features: pa.Table) -> pa.Table:
    """The entity columns of a joined table (keys, timestamps, anything else the entity
    rows held), then the model, its version and the prediction."""
    feature_names = set(model.feature_names)
    entity = features.select([c for c in features.column_names if c not in feature_names])
    clash = [name for name in OUTPUT_COLUMNS if name in entity.column_names]
    if clash:
        raise ModelError(
            f"the entity rows have columns {', '.join(clash)}, which the scores add; rename them"
        )
    predictions = model.predict_table(features)
    rows = features.num_rows
    return (
        entity.append_column("model", pa.repeat(pa.scalar(model.version.name), rows))
        .append_column("model_version", pa.repeat(pa.scalar(model.version.version), rows))
        .append_column("prediction", pa.array(predictions))
    )


def write_atomically(table: pa.Table, out: Path) -> Path:
    """Write to a temporary file beside `out`, flush, rename: readers see all or nothing."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with temporary.open("wb") as file:
            pq.write_table(table, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    fsync(out.parent)
    return out


def score(model: LoadedModel, job: RetrievalJob, out: Path) -> ScoreResult:
    table = predictions_table(model, job.to_arrow())
    path = write_atomically(table, out)
    return ScoreResult(model.version.name, model.version.version, table.num_rows, path)
