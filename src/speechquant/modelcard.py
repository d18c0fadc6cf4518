"""What a model needs to be fed and read as training did, stored with it.

The checkpoint holds a card, and every ONNX file (the exported model and each variant)
carries it as ``metadata_props`` string pairs, as icefall and sherpa-onnx do: sample
rate, mel bands, window and hop, the mel scale, the stored feature precision, the input
normalization, the vocabulary, the output stride, and what the model is (preset,
parameters, the corpus it learned from). ``transcribe``, evaluation and the benchmark
read their front-end from here, so a model trained on 80 bands or a 20 ms hop is fed
80 bands every 20 ms, and a model from another corpus is never fed the wrong features
in silence.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from speechquant.audio import SAMPLE_RATE, FeatureOptions
from speechquant.ctc import LAYERS
from speechquant.errors import UserError
from speechquant.text import BLANK_ID, LETTERS, NUM_CLASSES

MEL_SCALE = "slaney, area-normalized filters from 0 Hz to Nyquist; natural log of power, floor 1e-10"
OUTPUT_STRIDE = LAYERS[0].stride  # feature frames per output frame
CARD_VERSION = "1"


@dataclass(frozen=True)
class ModelCard:
    features: FeatureOptions = field(default_factory=FeatureOptions)
    normalization: str = "utterance"  # per-utterance mean/variance per mel bin, or "global" (in the graph)
    preset: str = "unknown"
    parameters: int = 0
    corpus_source: str = "unknown"  # synth, hw4p2 or librispeech
    vocabulary: tuple[str, ...] = tuple(LETTERS)  # class i is vocabulary[i]; the last class is spare
    blank_id: int = BLANK_ID
    num_classes: int = NUM_CLASSES
    output_stride: int = OUTPUT_STRIDE
    sample_rate: int = SAMPLE_RATE
    mel_scale: str = MEL_SCALE

    @classmethod
    def for_training(cls, store_meta: dict[str, Any], normalization: str, preset: str, parameters: int) -> ModelCard:
        """The card of a model trained on a feature store (its ``meta.json`` says how the features were made)."""
        return cls(
            features=FeatureOptions.of_store(store_meta),
            normalization=normalization,
            preset=preset,
            parameters=parameters,
            corpus_source=store_meta.get("source") or "unknown",
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelCard:
        values = dict(values)
        values["features"] = FeatureOptions(**values["features"])
        values["vocabulary"] = tuple(values["vocabulary"])
        return cls(**values)

    def metadata(self) -> dict[str, str]:
        """Flat string pairs for ONNX ``metadata_props``; a reader needs no speechquant to use them."""
        features = self.features
        return {
            "speechquant_card": CARD_VERSION,
            "sample_rate": str(self.sample_rate),
            "n_mels": str(features.n_mels),
            "window_ms": repr(features.window_ms),
            "hop_ms": repr(features.hop_ms),
            "mel_scale": self.mel_scale,
            "feature_dtype": features.dtype,
            "normalization": self.normalization,
            "vocabulary": json.dumps(list(self.vocabulary)),
            "blank_id": str(self.blank_id),
            "num_classes": str(self.num_classes),
            "output_stride": str(self.output_stride),
            "preset": self.preset,
            "parameters": str(self.parameters),
            "corpus_source": self.corpus_source,
        }

    @classmethod
    def from_metadata(cls, props: dict[str, str], name: str) -> ModelCard:
        """The card of a model's metadata; a model made before cards existed gets the defaults, with a warning.

        Such a model only ever read the default features, but its feature precision was
        written from the start (``feature_dtype``, float16 where absent).
        """
        if "speechquant_card" not in props:
            print(
                f"warning: {name} carries no front-end metadata (made by an older speechquant): "
                "assuming 40 mel bands, 25 ms windows, 10 ms hop",
                file=sys.stderr,
            )
            return cls(features=FeatureOptions(dtype=props.get("feature_dtype", "float16")))
        try:
            card = cls(
                features=FeatureOptions(
                    n_mels=int(props["n_mels"]),
                    window_ms=float(props["window_ms"]),
                    hop_ms=float(props["hop_ms"]),
                    dtype=props["feature_dtype"],
                ),
                normalization=props["normalization"],
                preset=props["preset"],
                parameters=int(props["parameters"]),
                corpus_source=props["corpus_source"],
                vocabulary=tuple(json.loads(props["vocabulary"])),
                blank_id=int(props["blank_id"]),
                num_classes=int(props["num_classes"]),
                output_stride=int(props["output_stride"]),
                sample_rate=int(props["sample_rate"]),
                mel_scale=props["mel_scale"],
            )
        except (KeyError, ValueError, TypeError) as error:
            raise UserError(f"{name}: its front-end metadata is damaged ({type(error).__name__}: {error})") from None
        card.check_runnable(name)
        return card

    def check_runnable(self, name: str) -> None:
        """Refuse a model this version cannot feed or read: another rate, vocabulary, stride or mel scale."""
        expected = ModelCard(features=self.features)
        for key in ("sample_rate", "vocabulary", "blank_id", "num_classes", "output_stride", "mel_scale"):
            if getattr(self, key) != getattr(expected, key):
                raise UserError(
                    f"{name} was made for {key} {getattr(self, key)!r}; this speechquant computes "
                    f"{getattr(expected, key)!r}"
                )
