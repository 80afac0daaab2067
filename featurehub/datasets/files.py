"""A dataset's files: written to a staging folder, flushed, renamed into place, verified.

Layout, under the offline store's root:

    <root>/<project>/_datasets/<name>/<save_id>/part-0.parquet    (saved)
    <root>/<project>/_datasets/.staging/<save_id>/...             (a save in progress)

The same protocol as an offline commit (featurehub/offline/parquet.py): the rows are written
into a staging folder, hashed (sha256) as the bytes go to disk, flushed (fsync) and renamed
into place; the registry row that follows makes them visible. A process killed before that
row leaves an unreferenced folder that no reader sees, removed by a later save once older
than the grace period. `.staging` cannot clash with a dataset: a name has no dot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from featurehub import failpoints
from featurehub.offline.parquet import fsync
from featurehub.registry.datasets import DatasetError, DatasetFile

GRACE_SECONDS = 3600.0
DATA_FILE = "part-0.parquet"
ROWS_PER_GROUP = 1_000_000


class _HashingWriter:
    """A file Arrow writes to that hashes every byte on its way to disk, so the fingerprint
    costs no second read of the data."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self.closed = True


def fingerprint(files: list[DatasetFile]) -> str:
    """The dataset's content fingerprint: sha256 over its files' names and sha256, in order
    (for one file, it changes exactly when that file does)."""
    digest = hashlib.sha256()
    for item in files:
        digest.update(f"{item.name}\0{item.sha256}\n".encode())
    return digest.hexdigest()


class DatasetFiles:
    """The `_datasets` folder of one project in the offline store."""

    def __init__(self, root: Path, project: str) -> None:
        self.root = Path(root)
        self.folder = self.root / project / "_datasets"

    def stage(self, table: pa.Table) -> tuple[Path, list[DatasetFile]]:
        """Write the rows into a new staging folder and flush it: nothing is visible yet."""
        save_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        staging = self.folder / ".staging" / save_id
        staging.mkdir(parents=True)
        path = staging / DATA_FILE
        with path.open("wb") as raw:
            writer = _HashingWriter(raw)
            pq.write_table(table, writer, row_group_size=ROWS_PER_GROUP)
            raw.flush()
            os.fsync(raw.fileno())
        fsync(staging)
        failpoints.reach("dataset_staged")
        return staging, [DatasetFile(DATA_FILE, writer.sha256.hexdigest(), writer.size)]

    def seal(self, staging: Path, name: str) -> str:
        """Rename a staged save into the dataset's folder; returns its path relative to the
        root, for the registry row. Still invisible until that row is written."""
        final = self.folder / name / staging.name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, final)
        fsync(final.parent)
        failpoints.reach("dataset_sealed")
        return final.relative_to(self.root).as_posix()

    def discard(self, relative: str | Path) -> None:
        """Remove the folder of a save that will not be recorded."""
        path = Path(relative)
        shutil.rmtree(path if path.is_absolute() else self.root / path, ignore_errors=True)

    def collect_garbage(self, known: set[str]) -> None:
        """Remove what killed saves left (unreferenced folders older than the grace period:
        younger ones may belong to a save still in flight)."""
        cutoff = time.time() - GRACE_SECONDS
        for path in self.folder.glob("*/*"):
            relative = path.relative_to(self.root).as_posix()
            if relative not in known and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)

    def read(self, relative: str, files: list[DatasetFile], dataset: str) -> pa.Table:
        """The dataset's rows, after checking every file against its recorded sha256."""
        folder = self.root / relative
        for item in files:
            _verify(folder / item.name, item, dataset)
        return pa.concat_tables([pq.read_table(folder / item.name) for item in files])


def _verify(path: Path, item: DatasetFile, dataset: str) -> None:
    if not path.is_file():
        raise DatasetError(
            f"dataset {dataset!r}: its file {str(path)!r} is missing; the offline store was "
            "changed outside featurehub: restore the file, or save the dataset again under a "
            "new name"
        )
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != item.sha256:
        raise DatasetError(
            f"dataset {dataset!r}: its file {str(path)!r} does not match the sha256 recorded "
            "when it was saved (it was modified): restore the file, or save the dataset again "
            "under a new name"
        )
