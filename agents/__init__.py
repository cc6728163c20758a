"""PyTorch models for navigation and instruction-path alignment (installed as ``valan.agents``)."""
