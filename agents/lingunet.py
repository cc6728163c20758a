"""LingUNet (Misra et al., EMNLP 2018) for Touchdown spatial description resolution (Chen et al., CVPR 2019).

Text -> ``valan.agents.layers.InstructionEncoder`` (embedding, bidirectional LSTM of ``hidden_size`` per
direction) -> mean over the tokens -> a vector split into ``levels`` equal slices.
Image feature map ``F_0`` -> ``levels`` convolutions ``F_k = ReLU(Conv_k(F_{k-1}))``. Slice ``k`` is mapped by
a linear layer to a per-example ``channels x channels`` 1x1 convolution kernel ``K_k`` that filters ``F_k``:
``G_k = K_k * F_k`` (the language-conditioned filtering). The up path runs deconvolutions from the bottom,
``H_levels = ReLU(Deconv_levels(G_levels))``, ``H_k = ReLU(Deconv_k([H_{k+1}; G_k]))`` (skip connections by
channel concatenation), back to the input's resolution. A per-pixel MLP maps ``H_1`` to one score per cell and a
softmax over all cells gives the distribution over the bear's position.

With ``stride=1`` (the default) the layout is that of the Touchdown SDR code and VALAN's
``touchdown/sdr/lingunet.py``: 5x5 convolutions and deconvolutions that keep the resolution, two levels, a
per-pixel MLP head (here one hidden layer, theirs two). Their sizes are larger (128 channels, 300-d embeddings,
300/600-d LSTMs). ``stride=2`` halves the resolution at each level, as in Misra et al.'s original LingUNet.
The defaults are small for CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from valan.agents.layers import InstructionEncoder


class LingUNet(nn.Module):
    """``forward(features (B, C, H, W), text (B, L), text_length (B,)) -> log-probabilities (B, H, W)``."""

    def __init__(self, vocab_size: int, in_channels: int, channels: int = 16, levels: int = 2,
                 embedding_size: int = 32, hidden_size: int = 32, kernel_size: int = 5, stride: int = 1,
                 head_hidden_size: int = 16, dropout: float = 0.0):
        """``dropout`` applies to the word embeddings."""
        super().__init__()
        if levels < 1 or stride < 1:
            raise ValueError(f"levels and stride must be >= 1, got {levels} and {stride}")
        if (2 * hidden_size) % levels:
            raise ValueError(f"the text vector (2 * hidden_size = {2 * hidden_size}) must split into {levels} equal slices")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.levels, self.channels = levels, channels
        self.text_encoder = InstructionEncoder(vocab_size, embedding_size, 2 * hidden_size, dropout)
        self.slice_size = 2 * hidden_size // levels
        pad = kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if k == 0 else channels, channels, kernel_size, stride=stride, padding=pad)
            for k in range(levels))
        self.text_to_kernels = nn.ModuleList(nn.Linear(self.slice_size, channels * channels) for _ in range(levels))
        # deconvs[k] maps level k+1 back to level k's resolution; all but the bottom one also take the skip G_{k+1}
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(channels if k == levels - 1 else 2 * channels, channels, kernel_size,
                               stride=stride, padding=pad)
            for k in range(levels))
        self.head = nn.Sequential(nn.Conv2d(channels, head_hidden_size, 1), nn.ReLU(),
                                  nn.Conv2d(head_hidden_size, 1, 1, bias=False))

    def scores(self, features: torch.Tensor, text: torch.Tensor, text_length: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores ``(B, H, W)``."""
        batch = features.shape[0]
        states, mask = self.text_encoder(text, text_length)
        text_vector = states.sum(dim=1) / mask.sum(dim=1, keepdim=True)  # mean over the tokens (pads are zeros)
        down = [features]  # F_0 .. F_levels
        for conv in self.convs:
            down.append(F.relu(conv(down[-1])))
        filtered = []  # G_1 .. G_levels
        for k in range(self.levels):
            slice_k = text_vector[:, k * self.slice_size:(k + 1) * self.slice_size]
            kernel = self.text_to_kernels[k](slice_k).view(batch, self.channels, self.channels)  # (B, out, in)
            filtered.append(torch.einsum("boi,bihw->bohw", kernel, down[k + 1]))
        h = filtered[-1]
        for k in reversed(range(self.levels)):  # from the bottom level up to the input's resolution
            if k < self.levels - 1:
                h = torch.cat([h, filtered[k]], dim=1)
            h = F.relu(self.deconvs[k](h, output_size=down[k].shape[-2:]))
        return self.head(h).squeeze(1)

    def forward(self, features: torch.Tensor, text: torch.Tensor, text_length: torch.Tensor) -> torch.Tensor:
        scores = self.scores(features, text, text_length)
        batch, height, width = scores.shape
        return F.log_softmax(scores.reshape(batch, -1), dim=1).view(batch, height, width)
