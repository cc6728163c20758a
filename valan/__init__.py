"""valan: vision-and-language navigation research on Ray and PyTorch."""

__version__ = "0.1.0"
