"""DVC stage `export`: the trained checkpoint as ONNX, with a parity check against PyTorch."""

import argparse
from pathlib import Path

import numpy as np
import torch

from speechquant.checkpoint import load_model
from speechquant.errors import exit_on_user_error
from speechquant.export import OPSET, export
from speechquant.fileio import size_mb, write_json
from speechquant.runtime import FEATURE_DTYPE, session
from speechquant.store import Store

PARITY_UTTERANCES = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--output", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--features", type=Path, default=Path("data/features/dev"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/export.json"))
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    dev = Store(args.features)
    export(model, args.output, metadata={FEATURE_DTYPE: dev.meta["dtype"]})
    rows = [np.asarray(dev[i], dtype=np.float32) for i in range(min(PARITY_UTTERANCES, len(dev)))]
    features = np.zeros((len(rows), max(len(r) for r in rows), rows[0].shape[1]), dtype=np.float32)
    for index, row in enumerate(rows):
        features[index, : len(row)] = row
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    onnx_log_probs = session(args.output).run(["log_probs"], {"features": features, "lengths": lengths})[0]
    with torch.no_grad():
        torch_log_probs = model(torch.from_numpy(features), torch.from_numpy(lengths))[0].numpy()
    difference = float(np.abs(onnx_log_probs - torch_log_probs).max())
    write_json(
        args.metrics,
        {
            "opset": OPSET,
            "size_mb": round(size_mb(args.output), 3),
            "max_abs_logprob_diff_vs_pytorch": round(difference, 7),
            "parity_utterances": len(rows),
        },
    )
    print(f"exported {args.output} ({size_mb(args.output):.2f} MB), max |log-prob diff| vs PyTorch {difference:.2e}")


if __name__ == "__main__":
    exit_on_user_error(main)
