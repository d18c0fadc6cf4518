"""Model checkpoints on disk: written atomically, read without unpickling code.

Apart from ``train.py`` so that the stages which only read the trained model (export,
quantize, benchmark) do not depend on, and re-run for, changes to the training loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from speechquant.errors import UserError
from speechquant.fileio import atomic_path
from speechquant.model import ModelConfig, Wav2Letter


def save(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        torch.save(data, temporary)


def load_checkpoint(path: Path, expected: ModelConfig | None = None) -> dict[str, Any]:
    """A checkpoint dict, loaded without pickle; checks it fits ``expected`` if given."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} not found") from None
    except Exception as error:
        raise UserError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if expected is not None and checkpoint.get("config") != expected.as_dict():
        raise UserError(
            f"checkpoint {path} was trained with model {checkpoint.get('config')}, "
            f"but the params ask for {expected.as_dict()}"
        )
    return checkpoint


def load_model(path: Path) -> Wav2Letter:
    """The model a checkpoint holds, in eval mode."""
    checkpoint = load_checkpoint(path)
    model = Wav2Letter(ModelConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
