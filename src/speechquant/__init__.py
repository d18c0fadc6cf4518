"""speechquant: train, quantize, evaluate and benchmark Wav2Letter CNN speech recognizers."""

__version__ = "0.1.0"
