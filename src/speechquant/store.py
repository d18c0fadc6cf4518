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


class Store:
    """Read-only view of a store: ``store[i]`` is utterance i's rows, memory-mapped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        files = (DATA_FILE, OFFSETS_FILE, MANIFEST_FILE, META_FILE)
        missing = [name for name in files if not (self.path / name).exists()]
        if missing:
            raise FileNotFoundError(f"{self.path} is not an utterance store: missing {', '.join(missing)}")
        self.data = np.load(self.path / DATA_FILE, mmap_mode="r", allow_pickle=False)
        self.offsets = np.load(self.path / OFFSETS_FILE, allow_pickle=False)
        self.meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        with open(self.path / MANIFEST_FILE, encoding="utf-8") as lines:
            self.utterances = [Utterance(**json.loads(line)) for line in lines]
        if len(self.offsets) != len(self.utterances) + 1 or self.offsets[-1] != len(self.data):
            raise ValueError(f"{self.path}: offsets, manifest and data disagree; rebuild the store")

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[self.offsets[index] : self.offsets[index + 1]]

    def __iter__(self) -> Iterator[tuple[Utterance, np.ndarray]]:
        for index, utterance in enumerate(self.utterances):
            yield utterance, self[index]
