"""The Wav2Letter CNN acoustic model: eleven 1-D convolutions over log-mel frames.

Every preset shares the layer geometry in ``ctc.LAYERS``; presets differ in channel
widths, batch norm and dropout. Layers are named ``conv0`` ... ``conv10`` here, in ONNX
node names and in ``quant.exclude``.

After every layer the frames beyond each utterance's own length are zeroed (the export skips
it before the pointwise convs, which cannot carry padding into a valid frame). A padded
utterance in a batch then sees exactly the zeros it would see alone at its end, so
outputs do not depend on batch size or on the other utterances in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechquant.ctc import LAYER_NAMES, LAYERS, N_LAYERS, ConvGeometry, unclamped_output_length
from speechquant.errors import UserError
from speechquant.fileio import atomic_path
from speechquant.params import Checked, limits
from speechquant.text import NUM_CLASSES

NORMALIZATIONS = ("utterance", "global")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shape; stored in every checkpoint."""

    n_mels: int = 40
    hidden_channels: int = 250
    wide_channels: int = 2000
    batch_norm: bool = False
    dropout: float = 0.2
    normalization: str = "utterance"  # "utterance": per-utterance mean/variance per mel bin; "global"
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization {self.normalization!r} is not one of {', '.join(NORMALIZATIONS)}")

    def widths(self) -> list[int]:
        """Input channels of conv0 followed by every layer's output channels."""
        return [self.n_mels, *[self.hidden_channels] * 8, self.wide_channels, self.wide_channels, self.num_classes]

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # Exactly the study's network: 23,618,535 parameters.
    "paper": ModelConfig(hidden_channels=250, wide_channels=2000, batch_norm=False, dropout=0.2),
    # The same shape, narrowed to train on 2 CPU cores in minutes; batch norm folds away at export.
    # No dropout: it cost a quarter of each CPU step (bernoulli sampling) and the short schedule underfits.
    "default": ModelConfig(hidden_channels=160, wide_channels=640, batch_norm=True, dropout=0.0),
}


@dataclass(frozen=True)
class ModelOptions(Checked):
    """The ``model`` params: a preset, optionally with its widths or dropout overridden."""

    preset: str = field(default="default", metadata=limits(choices=PRESETS))
    hidden_channels: int | None = field(default=None, metadata=limits(1, 100_000))
    wide_channels: int | None = field(default=None, metadata=limits(1, 100_000))
    dropout: float | None = field(default=None, metadata=limits(0, 0.99))
    normalization: str | None = field(default=None, metadata=limits(choices=NORMALIZATIONS))

    def config(self, n_mels: int = 40) -> ModelConfig:
        base = PRESETS[self.preset]
        overrides = {
            key: value
            for key, value in (
                ("hidden_channels", self.hidden_channels),
                ("wide_channels", self.wide_channels),
                ("dropout", self.dropout),
                ("normalization", self.normalization),
            )
            if value is not None
        }
        return ModelConfig(**{**base.as_dict(), **overrides, "n_mels": n_mels})


def _layer_lengths(lengths: torch.Tensor, geometry: ConvGeometry) -> torch.Tensor:
    return torch.clamp(unclamped_output_length(lengths, geometry), min=0)


def output_lengths(input_lengths: torch.Tensor) -> torch.Tensor:
    """Output frames per utterance, for a tensor of input frame counts."""
    lengths = input_lengths
    for geometry in LAYERS:
        lengths = _layer_lengths(lengths, geometry)
    return lengths


def _sum_to_length(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Sum over frames 0..length-1 of (batch, frames, bins) zero-padded values, whatever the padding."""
    last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, values.shape[2])
    return values.cumsum(dim=1).gather(1, last)


class Wav2Letter(nn.Module):
    """features (batch, frames, n_mels) and lengths (batch,) -> log-probs (batch, frames', classes)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = config.widths()
        for index, geometry in enumerate(LAYERS):
            conv = nn.Conv1d(widths[index], widths[index + 1], geometry.kernel, geometry.stride, geometry.padding)
            self.add_module(LAYER_NAMES[index], conv)
            if config.batch_norm and index < N_LAYERS - 1:
                self.add_module(f"norm{index}", nn.BatchNorm1d(widths[index + 1]))
        self.dropout = nn.Dropout(config.dropout)
        if config.normalization == "global":  # set from the training data by the trainer
            self.register_buffer("input_mean", torch.zeros(config.n_mels))
            self.register_buffer("input_std", torch.ones(config.n_mels))

    def normalize(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero-mean, unit-variance log-mel per bin; padding stays zero.

        The statistics are prefix sums in float64 read at each utterance's last frame: a
        reduction over the padded axis would add in an order that depends on the padded
        length, and one flipped bit here can move an int8 rounding downstream, so the same
        utterance would decode differently in a different batch.
        """
        mask = (torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None])[..., None]
        if self.config.normalization == "global":
            return (features - self.input_mean) / self.input_std * mask.to(features.dtype)
        values = features.double() * mask
        count = lengths.clamp(min=1).double()[:, None, None]
        mean = _sum_to_length(values, lengths) / count
        centered = (values - mean) * mask
        variance = _sum_to_length(centered**2, lengths) / count
        return (centered * torch.rsqrt(variance + 1e-5)).to(features.dtype)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, zero_all_padding: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs and output lengths; see ``run_layers`` for ``zero_all_padding``."""
        return self.run_layers(
            features, lengths, lambda index, x: getattr(self, LAYER_NAMES[index])(x), zero_all_padding
        )

    def run_layers(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        conv: Callable[[int, torch.Tensor], torch.Tensor],
        zero_all_padding: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network around its convs (normalization, batch norm, ReLU, dropout, padding masks);
        ``conv(index, x)`` runs layer ``index``, so QAT can swap in fake-quantized convs.

        ``zero_all_padding=False`` leaves the padding unzeroed before a pointwise conv (conv9, conv10):
        no valid frame reads it there, so the log-probs are the same at every frame, but statistics
        over a whole batch (batch norm in training, the compress stage's moments) would count it. The
        ONNX export uses it: two fewer masks, over the widest tensors. Lengths and masks are computed
        only where a layer changes the frame count, so that the graph holds two of each, not eleven.
        """
        x = self.normalize(features, lengths).transpose(1, 2)
        valid: torch.Tensor | None = None  # (batch, 1, frames): True within each utterance's length
        for index, geometry in enumerate(LAYERS):
            x = conv(index, x)
            if valid is None or not geometry.keeps_length:
                lengths = _layer_lengths(lengths, geometry)
                valid = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None])[:, None, :]
            last = index == N_LAYERS - 1
            if not last:
                if self.config.batch_norm:
                    x = getattr(self, f"norm{index}")(x)
                x = self.dropout(torch.relu(x))
            if zero_all_padding or last or not LAYERS[index + 1].pointwise:
                x = x * valid.to(x.dtype)
        return torch.log_softmax(x.transpose(1, 2), dim=-1), lengths


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# Checkpoints on disk: read without unpickling code (``weights_only``), written atomically.


def save_checkpoint(path: Path, data: dict[str, Any]) -> None:
    """Written atomically: a killed run leaves the previous checkpoint whole."""
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
    return model_of(load_checkpoint(path))


def model_of(checkpoint: dict[str, Any]) -> Wav2Letter:
    model = Wav2Letter(ModelConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
