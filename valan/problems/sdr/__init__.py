"""Touchdown spatial description resolution (SDR) with LingUNet."""
