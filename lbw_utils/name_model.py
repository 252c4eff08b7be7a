"""The recurrent name -> nationality classifier of the draft paper's author.

character embedding -> Conv1d + ReLU -> 2-layer LSTM -> last valid step's hidden
state (top layer) -> dropout -> linear -> logits. The author's softmax is left
to the loss. ``cell="bigru"`` swaps the LSTM for a bidirectional GRU.

Padding never influences a name's logits: the recurrent layer reads a packed
sequence, and padded positions are zeroed before the convolution, whose window
at a name's last character would otherwise see the next (padding) position.
So a name gets the same logits alone or inside any padded batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lbw_utils.names import PAD_INDEX, VOCAB_SIZE

CELLS = ("lstm", "bigru")


class NameClassifier(nn.Module):
    """``forward(codes [B, T] int64, lengths [B]) -> logits [B, num_classes]``.

    Defaults are the author's: embedding 200, 64 conv channels (kernel 3),
    2-layer LSTM with hidden size 200, dropout 0.5. ``vocab_size`` defaults to
    the 30 symbols of :mod:`lbw_utils.names` (padding, 28 characters, unknown).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: int = VOCAB_SIZE,
        embedding_dim: int = 200,
        conv_channels: int = 64,
        kernel_size: int = 3,
        hidden_size: int = 200,
        num_layers: int = 2,
        dropout: float = 0.5,
        cell: str = "lstm",
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} is not one of {list(CELLS)}")
        if kernel_size % 2 != 1:
            # padding = kernel_size // 2 keeps the sequence length only for odd kernels.
            raise ValueError(f"kernel_size={kernel_size} must be odd")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_INDEX)
        self.conv = nn.Conv1d(embedding_dim, conv_channels, kernel_size, padding=kernel_size // 2)
        if cell == "lstm":
            self.rnn: nn.RNNBase = nn.LSTM(conv_channels, hidden_size, num_layers, batch_first=True)
        else:
            self.rnn = nn.GRU(conv_channels, hidden_size, num_layers, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        directions = 2 if self.rnn.bidirectional else 1
        self.classifier = nn.Linear(directions * hidden_size, num_classes)

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(codes.shape[1], device=codes.device)[None, :] < lengths[:, None]
        embedded = self.embedding(codes) * valid.unsqueeze(-1)  # [B, T, E], padding exactly zero
        features = torch.relu(self.conv(embedded.transpose(1, 2))).transpose(1, 2)  # [B, T, C]
        # pack_padded_sequence wants lengths on the CPU; enforce_sorted=False
        # sorts internally and returns the final states in the batch's order.
        packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, final_states = self.rnn(packed)
        if isinstance(final_states, tuple):  # LSTM returns (h_n, c_n)
            final_states = final_states[0]
        return self.classifier(self.dropout(self._top_layer(final_states)))

    def _top_layer(self, final_states: torch.Tensor) -> torch.Tensor:
        """The top layer's final hidden state; for the bidirectional GRU, both directions concatenated.

        ``final_states`` is ``[layers * directions, B, H]``, layer-major, so the
        top layer's directions are the last ``directions`` entries (forward, backward).
        """
        directions = 2 if self.rnn.bidirectional else 1
        return torch.cat(list(final_states[-directions:]), dim=1)
