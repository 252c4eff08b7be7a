"""Nationalities a trained names model predicts for typed names."""

from __future__ import annotations

from typing import Sequence

import torch

from lbw_utils.names.encoding import encode_batch


@torch.no_grad()
def predict_nationalities(model: torch.nn.Module, names: list[str], classes: Sequence[str], k: int = 3) -> list[dict]:
    """Top-``k`` nationalities with probabilities for each typed name (model in eval mode)."""
    device = next(model.parameters()).device
    codes, lengths = encode_batch(names, device=device)
    probabilities = torch.softmax(model.eval()(codes, lengths).float(), dim=1).cpu()
    top = probabilities.topk(min(k, len(classes)), dim=1)
    return [
        {"name": name, **{f"#{rank + 1}": f"{classes[index]} ({probability:.0%})"
                          for rank, (probability, index) in enumerate(zip(values.tolist(), indices.tolist()))}}
        for name, values, indices in zip(names, top.values, top.indices)
    ]
