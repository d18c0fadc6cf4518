"""DVC stage `export`: the trained checkpoint as ONNX, with a parity check against PyTorch."""

import argparse
from pathlib import Path

from speechquant.audio import FeatureOptions
from speechquant.errors import exit_on_user_error
from speechquant.export import OPSET, export, parity
from speechquant.fileio import size_mb, write_json
from speechquant.model import load_checkpoint, model_of
from speechquant.modelcard import ModelCard
from speechquant.store import Store

PARITY_UTTERANCES = 8


def legacy_card(dev: Store) -> ModelCard:
    """A checkpoint from before cards: it was trained on the features at hand, whose store says how they were made."""
    print(
        "warning: the checkpoint carries no model card (older speechquant): taking the front-end from the dev features"
    )
    return ModelCard(features=FeatureOptions.of_store(dev.meta), corpus_source=dev.meta.get("source") or "unknown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--output", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--features", type=Path, default=Path("data/features/dev"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/export.json"))
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.checkpoint)
    model = model_of(checkpoint)
    dev = Store(args.features)
    card = ModelCard.from_dict(checkpoint["card"]) if "card" in checkpoint else legacy_card(dev)
    export(model, args.output, metadata=card.metadata())
    difference, compared = parity(model, args.output, dev, PARITY_UTTERANCES)
    write_json(
        args.metrics,
        {
            "opset": OPSET,
            "size_mb": round(size_mb(args.output), 3),
            "max_abs_logprob_diff_vs_pytorch": round(difference, 7),
            "parity_utterances": compared,
        },
    )
    print(f"exported {args.output} ({size_mb(args.output):.2f} MB), max |log-prob diff| vs PyTorch {difference:.2e}")


if __name__ == "__main__":
    exit_on_user_error(main)
