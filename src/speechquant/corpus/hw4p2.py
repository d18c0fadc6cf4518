"""CMU 11-785 HW4P2 (Kaggle competition ``11785-spring2021-hw4p2``): the study's data.

The competition ships pickled NumPy object arrays: ``{split}.npy`` holds one float
array of mel *power* (linear scale, shape (T, 40)) per utterance, and
``{split}_transcripts.npy`` one array of byte-string words per utterance; the test
split has no transcripts. They are unpickled here only, by an unpickler that can build
nothing but NumPy arrays, dtypes and strings: a crafted file cannot run code. Every
element's type is checked before it is used.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from speechquant.corpus.transcripts import screen_transcript
from speechquant.errors import UserError
from speechquant.fileio import remove_stale_scratch
from speechquant.skips import SkipLog
from speechquant.store import SPLITS, StoreWriter, Utterance

MEL_BANDS = 40  # what the competition ships: 40-band mel power per 10 ms frame
DOWNLOAD_MARK = ".speechquant-download"  # written into a folder this project downloaded
FEATURE_FILES = {split: f"{split}.npy" for split in SPLITS}
TRANSCRIPT_FILES = {"train": "train_transcripts.npy", "dev": "dev_transcripts.npy"}


@dataclass(frozen=True)
class Hw4p2Options:
    """The ``data.hw4p2`` params. Files already in ``download_dir`` are used as they are."""

    competition: str = "11785-spring2021-hw4p2"
    download_dir: str = "data/downloads/hw4p2"


def _find(directory: Path, name: str) -> Path | None:
    """The one file called ``name`` at any depth under ``directory`` (archives unpack into
    subfolders), None if there is none; several (a backup beside the real one) are refused
    rather than one picked by its path's spelling."""
    matches = sorted(directory.rglob(name)) if directory.is_dir() else []
    if len(matches) > 1:
        listed = ", ".join(str(match) for match in matches)
        raise UserError(
            f"several {name} under {directory} ({listed}): keep one, or point data.hw4p2.download_dir at it"
        )
    return matches[0] if matches else None


def _required_files() -> list[str]:
    return [*FEATURE_FILES.values(), *TRANSCRIPT_FILES.values()]


def fetch(options: Hw4p2Options) -> Path:
    """Make sure the competition files are in ``download_dir``; download them if not.

    The download goes to a new temporary folder that is moved into place only once it is
    complete and unpacked, so a failure leaves nothing behind. A folder already at
    ``download_dir`` is replaced only if it is empty or an earlier download of ours: the
    project never deletes what it did not create.
    """
    directory = Path(options.download_dir)
    if all(_find(directory, name) for name in _required_files()):
        return directory
    _refuse_foreign_folder(directory)
    api = _authenticated_api(options.competition)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(directory.parent, ".hw4p2-download-", directory)
    with tempfile.TemporaryDirectory(
        prefix=f".hw4p2-download-{os.getpid()}-", suffix=".tmp", dir=directory.parent
    ) as scratch:
        partial = Path(scratch) / "files"
        partial.mkdir()
        try:
            api.competition_download_files(options.competition, path=str(partial), quiet=False)
        except Exception as error:
            raise UserError(_explain_download_error(error, options.competition)) from None
        for archive in partial.glob("*.zip"):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(partial)
            archive.unlink()
        missing = [name for name in _required_files() if not _find(partial, name)]
        if missing:
            raise UserError(f"the download of {options.competition} lacks {', '.join(missing)}")
        (partial / DOWNLOAD_MARK).write_text(f"{options.competition}\n", encoding="utf-8")
        _refuse_foreign_folder(directory)  # checked again: the download took a while
        if directory.exists():
            os.replace(directory, Path(scratch) / "old")  # empty or ours; removed with the scratch folder
        os.replace(partial, directory)
    return directory


def _refuse_foreign_folder(directory: Path) -> None:
    """A UserError unless ``directory`` is absent, empty, or an earlier download of ours."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise UserError(f"data.hw4p2.download_dir {directory} is not a folder; choose a new folder for the download")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / DOWNLOAD_MARK).is_file():
        raise UserError(
            f"data.hw4p2.download_dir {directory} holds files that are not a download of ours and lacks "
            f"{', '.join(_required_files())}: choose a new or empty folder (nothing was changed)"
        )


def _authenticated_api(competition: str) -> Any:
    """A KaggleApi with credentials, or a UserError saying how to provide them."""
    # The kaggle package tries to authenticate when imported and prints help to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except (SystemExit, Exception):
            raise UserError(
                "Kaggle credentials not found: save your API token as ~/.kaggle/kaggle.json "
                "(or set KAGGLE_USERNAME and KAGGLE_KEY), accept the rules at "
                f"https://www.kaggle.com/competitions/{competition}/rules, "
                "or put the competition's .npy files in data.hw4p2.download_dir yourself"
            ) from None
    return api


def _explain_download_error(error: Exception, competition: str) -> str:
    text = str(error)
    if "403" in text or "Forbidden" in text:
        return (
            f"Kaggle refused the download of {competition}: accept the competition rules at "
            f"https://www.kaggle.com/competitions/{competition}/rules with the account of your API token"
        )
    if "401" in text or "Unauthorized" in text:
        return "Kaggle rejected the credentials: create a new API token at https://www.kaggle.com/settings"
    if "404" in text:
        return f"Kaggle has no competition {competition!r}: check data.hw4p2.competition"
    return f"could not download {competition} from Kaggle ({type(error).__name__}: {text[:200]}); check the network"


class _ArrayUnpickler(pickle.Unpickler):
    """Builds NumPy arrays, dtypes, bytes and strings; refuses every other global.

    Pickle runs whatever callable a file names; the competition's files need only the
    array reconstruction below (``_codecs.encode`` for arrays pickled by Python 2, whose
    byte strings arrive as latin-1 text).
    """

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file has no need of")
        return super().find_class(module, name)


def _load_object_array(path: Path) -> np.ndarray:
    """The file's array; object arrays are unpickled by ``_ArrayUnpickler`` only."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = header(file)
            if dtype.hasobject:
                array = _ArrayUnpickler(file, encoding="bytes").load()
            else:
                array = np.load(path, allow_pickle=False)
    except Exception as error:
        raise UserError(f"{path} is not a readable .npy file ({type(error).__name__}: {error})") from None
    if not isinstance(array, np.ndarray) or array.ndim < 1:
        raise UserError(f"{path} must hold an array with one element per utterance")
    return array


def _features(element: Any, path: Path, index: int) -> np.ndarray:
    if not (isinstance(element, np.ndarray) and element.ndim == 2 and element.shape[1] == MEL_BANDS):
        shape = getattr(element, "shape", None)
        raise UserError(
            f"{path}: element {index} is {type(element).__name__} of shape {shape}, expected (T, {MEL_BANDS})"
        )
    if element.dtype.kind not in "fiu":
        raise UserError(f"{path}: element {index} has dtype {element.dtype}, expected floats")
    return element.astype(np.float32, copy=False)


def _transcript(element: Any, path: Path, index: int) -> str:
    """Words joined by spaces; each word must be a byte or text string."""
    words = [element] if isinstance(element, bytes | str) else element
    if not isinstance(words, np.ndarray | list | tuple):
        raise UserError(f"{path}: element {index} is {type(element).__name__}, expected an array of words")
    joined = []
    for word in words:
        if isinstance(word, bytes | np.bytes_):
            joined.append(bytes(word).decode("utf-8", errors="replace"))
        elif isinstance(word, str):
            joined.append(str(word))
        else:
            raise UserError(f"{path}: element {index} holds a {type(word).__name__}, expected byte-string words")
    return " ".join(joined)


def convert_split(directory: Path, split: str, output: Path) -> dict[str, Any]:
    """Write one split's mel power and transcripts to a store at ``output``."""
    feature_path = _find(directory, FEATURE_FILES[split])
    if feature_path is None:
        raise UserError(f"{FEATURE_FILES[split]} not found under {directory}")
    features = _load_object_array(feature_path)
    transcripts: np.ndarray | None = None
    if split in TRANSCRIPT_FILES:
        transcript_path = _find(directory, TRANSCRIPT_FILES[split])
        if transcript_path is None:
            raise UserError(f"{TRANSCRIPT_FILES[split]} not found under {directory}")
        transcripts = _load_object_array(transcript_path)
        if len(transcripts) != len(features):
            raise UserError(
                f"{feature_path.name} has {len(features)} utterances but {transcript_path.name} "
                f"has {len(transcripts)}: the files do not belong together"
            )
    skips = SkipLog()
    dropped = 0
    meta = {"kind": "mel_power", "source": "hw4p2", "window_ms": 25.0, "hop_ms": 10.0}
    with StoreWriter(output, np.float32, (MEL_BANDS,), meta) as writer:
        for index in tqdm(range(len(features)), desc=f"hw4p2 {split}", unit="utt", leave=False):
            utterance_id = f"hw4p2-{split}-{index:06d}"
            rows = _features(features[index], feature_path, index)
            text = None
            if transcripts is not None:
                text, dropped_here = screen_transcript(
                    _transcript(transcripts[index], transcript_path, index), utterance_id, skips
                )
                dropped += dropped_here
                if text is None:
                    continue
            writer.append(Utterance(utterance_id, text, 0, {"file": feature_path.name, "index": index}), rows)
        writer.meta.update(skipped=skips.as_dict(), dropped_chars=dropped)
    return writer.meta
