"""The on-disk utterance store that every data stage reads and writes.

One store per split: all utterances' rows in a single memory-mappable ``data.npy``
(audio samples, or frames x mel bands), ``offsets.npy`` (int64, one more than the
utterances) to find each one, ``manifest.jsonl`` (id, text, n_frames, source) and
``meta.json`` (what the rows are, and what was skipped on the way). No pickle anywhere,
so a store from an untrusted source cannot run code, and a 100-hour split costs no RAM
to open.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from speechquant.errors import UserError
from speechquant.fileio import atomic_path

DATA_FILE = "data.npy"
OFFSETS_FILE = "offsets.npy"
MANIFEST_FILE = "manifest.jsonl"
META_FILE = "meta.json"
SPLITS = ("train", "dev", "test")

# Rows are streamed to data.npy before their count is known, so the header is written
# with room to spare and rewritten with the final shape at the end.
_HEADER_BYTES = 128


@dataclass
class Utterance:
    """One utterance's manifest record; ``text`` is None where no transcript exists."""

    id: str
    text: str | None
    n_frames: int
    source: dict[str, Any] = field(default_factory=dict)


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    description = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    body = description.encode("latin-1")
    padding = _HEADER_BYTES - 10 - len(body) - 1
    if padding < 0:
        raise ValueError(f"shape {shape} does not fit the reserved .npy header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", _HEADER_BYTES - 10) + body + b" " * padding + b"\n"


class StoreWriter:
    """Append utterances to a new store; ``close()`` publishes it atomically.

    Use as a context manager: if the block raises, nothing is published and any store
    already at ``path`` stays as it was.
    """

    def __init__(self, path: str | Path, dtype: np.dtype | str, row_shape: tuple[int, ...], meta: dict[str, Any]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.meta = dict(meta)
        self._atomic = atomic_path(self.path)
        self._directory: Path | None = None
        self._data: BinaryIO | None = None
        self._manifest: Any = None
        self._offsets = [0]

    def __enter__(self) -> StoreWriter:
        self._directory = self._atomic.__enter__()
        self._directory.mkdir()
        self._data = open(self._directory / DATA_FILE, "wb")
        self._data.write(_npy_header(self.dtype, (0, *self.row_shape)))
        self._manifest = open(self._directory / MANIFEST_FILE, "w", encoding="utf-8")
        return self

    def append(self, utterance: Utterance, rows: np.ndarray) -> None:
        """Add one utterance; ``rows`` must have the store's row shape."""
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{utterance.id}: rows of shape {rows.shape[1:]}, store holds {self.row_shape}")
        assert self._data is not None
        self._data.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self._offsets.append(self._offsets[-1] + len(rows))
        utterance.n_frames = len(rows)
        self._manifest.write(json.dumps(utterance.__dict__, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        assert self._data is not None and self._directory is not None
        if kind is None:
            self._data.seek(0)
            self._data.write(_npy_header(self.dtype, (self._offsets[-1], *self.row_shape)))
        self._data.close()
        self._manifest.close()
        if kind is None:
            np.save(self._directory / OFFSETS_FILE, np.asarray(self._offsets, dtype=np.int64))
            meta = {**self.meta, "utterances": len(self), "dtype": self.dtype.name, "row_shape": list(self.row_shape)}
            (self._directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        self._atomic.__exit__(kind, error, traceback)


class MissingStore(UserError, FileNotFoundError):
    """A folder that is not a store (not built yet, or the wrong path)."""


class DamagedStore(UserError):
    """A store whose files are unreadable or disagree (truncated, edited by hand, half-copied)."""


class Store:
    """Read-only view of a store: ``store[i]`` is utterance i's rows, memory-mapped.

    Opening checks that the four files agree (counts, offsets from 0 up to the rows in
    ``data.npy``, never decreasing, each manifest record's frame count), so a damaged
    store is one error naming the file and how to rebuild it, never a wrong slice or a
    traceback deep inside a stage. The check reads the offsets and manifest, not the rows.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        files = (DATA_FILE, OFFSETS_FILE, MANIFEST_FILE, META_FILE)
        missing = [name for name in files if not (self.path / name).exists()]
        if missing:
            stage = self.path.parent.name if self.path.parent.name in ("corpus", "features") else None
            hint = f": run `dvc repro {stage}`" if stage else ""
            raise MissingStore(f"{self.path} is not an utterance store: missing {', '.join(missing)}{hint}")
        self.data = self._read(DATA_FILE, lambda file: np.load(file, mmap_mode="r", allow_pickle=False))
        self.offsets = self._read(OFFSETS_FILE, lambda file: np.load(file, allow_pickle=False))
        self.meta: dict[str, Any] = self._read(META_FILE, lambda file: json.loads(file.read_text(encoding="utf-8")))
        self.utterances = self._read(MANIFEST_FILE, _read_manifest)
        self._check()

    def _read(self, name: str, read: Any) -> Any:
        try:
            return read(self.path / name)
        except (OSError, ValueError, TypeError, KeyError, EOFError) as error:
            raise self._damaged(name, f"{type(error).__name__}: {str(error)[:120]}") from None

    def _check(self) -> None:
        offsets, rows = self.offsets, len(self.data) if self.data.ndim else -1
        if self.data.ndim < 1 or not isinstance(self.meta, dict):
            raise self._damaged(DATA_FILE if self.data.ndim < 1 else META_FILE, "not the layout a store has")
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or len(offsets) == 0 or offsets[0] != 0:
            raise self._damaged(OFFSETS_FILE, "not a list of row offsets starting at 0")
        if np.any(np.diff(offsets) < 0) or offsets[-1] != rows:
            raise self._damaged(OFFSETS_FILE, f"offsets decrease or end at {offsets[-1]}, not at the {rows} rows")
        if len(offsets) != len(self.utterances) + 1:
            raise self._damaged(MANIFEST_FILE, f"{len(self.utterances)} records for {len(offsets) - 1} offsets")
        if self.meta.get("utterances", len(self.utterances)) != len(self.utterances):
            raise self._damaged(
                META_FILE, f"says {self.meta.get('utterances')} utterances, the manifest has {len(self)}"
            )
        lengths = np.diff(offsets)
        wrong = next((i for i, u in enumerate(self.utterances) if u.n_frames != lengths[i]), None)
        if wrong is not None:
            raise self._damaged(
                MANIFEST_FILE,
                f"record {wrong + 1} has {self.utterances[wrong].n_frames} frames, its offsets {lengths[wrong]}",
            )

    def _damaged(self, name: str, what: str) -> DamagedStore:
        stage = self.path.parent.name if self.path.parent.name in ("corpus", "features") else None
        fix = f"rebuild it with `dvc repro -f -s {stage}`" if stage else "rebuild the store"
        return DamagedStore(f"{self.path / name} is damaged ({what}): {fix}")

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[self.offsets[index] : self.offsets[index + 1]]

    def __iter__(self) -> Iterator[tuple[Utterance, np.ndarray]]:
        for index, utterance in enumerate(self.utterances):
            yield utterance, self[index]


def _read_manifest(path: Path) -> list[Utterance]:
    with open(path, encoding="utf-8") as lines:
        return [Utterance(**json.loads(line)) for line in lines]


def pad_rows(rows: list[np.ndarray], min_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Utterances of different lengths as one zero-padded float32 batch (batch, frames, bins) and their lengths."""
    frames = max(min_frames, *(len(row) for row in rows))
    padded = np.zeros((len(rows), frames, rows[0].shape[1]), dtype=np.float32)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded, np.array([len(row) for row in rows], dtype=np.int64)
