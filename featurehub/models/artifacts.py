"""Model artifacts, content-addressed under `models.artifact_root`.

    <artifact_root>/sha256/<first two hex digits>/<sha256>.<flavor suffix>
    <artifact_root>/unpacked/<sha256>/      an archive flavor's files, to load from (a cache)

A file is written to a temporary name in its folder, flushed and renamed into place, so no
reader ever sees half of one; the same bytes registered twice are stored once. Every read
hashes the bytes it got and compares them with the sha256 the registry recorded before
anything deserializes them: a changed or truncated file is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from featurehub.offline.parquet import fsync
from featurehub.registry.models import ModelError


class ArtifactError(ModelError):
    """An artifact is missing or does not match its recorded sha256."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """The folder of model artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Where an archive (an MLflow model) is unpacked to load from; safe to delete.
        self.unpacked = self.root / "unpacked"

    def put(self, data: bytes, suffix: str) -> tuple[str, str]:
        """Store `data`; returns (its sha256, its path relative to the root)."""
        digest = sha256_of(data)
        relative = f"sha256/{digest[:2]}/{digest}.{suffix}"
        final = self.root / relative
        if final.is_file() and sha256_of(final.read_bytes()) == digest:
            return digest, relative
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / f".{digest}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            with temporary.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        fsync(final.parent)
        return digest, relative

    def read(self, relative: str, sha256: str, what: str) -> bytes:
        """The artifact's bytes, checked against `sha256`; `what` names it in errors."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ArtifactError(f"{what}: its artifact path {relative!r} leaves the artifact root")
        if not path.is_file():
            raise ArtifactError(
                f"{what}: its artifact {str(path)!r} is missing (models.artifact_root is "
                f"{str(self.root)!r}); restore the file or point models.artifact_root at the "
                "folder that holds it"
            )
        data = path.read_bytes()
        found = sha256_of(data)
        if found != sha256:
            raise ArtifactError(
                f"{what}: its artifact {str(path)!r} has sha256 {found[:16]}..., not the "
                f"{sha256[:16]}... recorded when it was registered: the file was changed, so it "
                "is not loaded. Restore the original file, or register the model again"
            )
        return data
