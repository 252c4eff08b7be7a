"""Name -> nationality classifiers: recurrent networks (the draft paper's family) and a hashed n-gram bag.

Both take ``(codes [B, T] int64, lengths [B])`` from :mod:`lbw_utils.data.names` and return logits.
A *model configuration* (``NAME_MODEL_CONFIGS``) names a model and the training it gets:

- ``"rnn"`` (the default of every names study): :class:`NameClassifier` as a one-layer bidirectional
  GRU over character embeddings plus hashed embeddings of the 2-4-grams ending at each character, mean
  and max pooled over time, one-cycle AdamW with strong decoupled weight decay. Built in earlier rounds of
  ``benchmarks/names_rnn_tuning.py`` that validated on k-fold partition seed 1, whose names the evaluated
  folds also test; then re-checked on the fixed tuning share alone (names no evaluated run sees), which
  kept it (``docs/names-tuning.md``).
- ``"ngram-bag"``: :class:`NgramBagClassifier`, hashed character n-grams (also tagged with the word they
  stand in) and whole words in 2^17 buckets, one linear layer, one-cycle AdamW, 6 epochs
  (``benchmarks/names_ablation.py``): the second model family of the names tables.
- ``"author"``: :class:`NameClassifier` with the draft author's final recipe (sizes, Adam at 3.5e-3 with
  step decay, dropout 0.3, his name-switch augmentation, batch 512, 20 epochs), read from his public code
  (the files are named beside the configuration).

The author's model: character embedding -> Conv1d + ReLU -> 2-layer LSTM -> last valid step's hidden
state (top layer) -> dropout -> linear -> logits. The author's softmax is left
to the loss. ``cell`` picks LSTM or GRU, one or two directions; ``pooling`` the last state or the
mean / max over time; ``ngram_buckets`` adds hashed n-gram embeddings beside the characters.

Padding never influences a name's logits: the recurrent layer reads a packed
sequence, and padded positions are zeroed before the convolution, whose window
at a name's last character would otherwise see the next (padding) position.
So a name gets the same logits alone or inside any padded batch.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lbw_utils.data.names import PAD_INDEX, VOCAB_SIZE, encode_batch

CELLS = ("lstm", "gru", "bilstm", "bigru")
POOLINGS = ("last", "mean", "max", "meanmax")
SPACE_CODE = 27  # the code of " " in lbw_utils.data.names' alphabet (a=1 ... z=26, " "=27, "-"=28)
BOUNDARY_CODE = VOCAB_SIZE  # an extra symbol framing each name, so n-grams see its start and end
_CODE_BASE = VOCAB_SIZE + 1
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash; n-gram ids stay far below 2**63 / this
_WORD_HASH_MODULUS = 1_000_000_007


class NameClassifier(nn.Module):
    """``forward(codes [B, T] int64, lengths [B]) -> logits [B, num_classes]``: a recurrent name classifier.

    Character embedding (plus, with ``ngram_buckets``, hashed embeddings of the character n-grams of
    orders ``ngram_orders`` ending at each position) -> optional Conv1d + ReLU (``conv_channels`` 0: none)
    -> recurrent layers (``cell``: lstm, gru, or their bidirectional forms bilstm, bigru) -> the top
    layer's final state(s) (``pooling="last"``) or the mean / max / both over time of its outputs ->
    dropout -> linear. Defaults are the author's sizes: embedding 200, 64 conv channels (kernel 3),
    2-layer LSTM with hidden size 200, last state; ``vocab_size`` defaults to the 30 symbols of
    :mod:`lbw_utils.data.names` (padding, 28 characters, unknown).
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
        pooling: str = "last",
        ngram_buckets: int = 0,
        ngram_orders=(2, 3),
        words: bool = False,
        embedding_dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} is not one of {list(CELLS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {list(POOLINGS)}")
        if kernel_size % 2 != 1:
            # padding = kernel_size // 2 keeps the sequence length only for odd kernels.
            raise ValueError(f"kernel_size={kernel_size} must be odd")
        orders = tuple(ngram_orders)
        if len(orders) != 2 or not 2 <= orders[0] <= orders[1]:
            raise ValueError(f"ngram_orders={ngram_orders!r} is not allowed: expected (shortest, longest) with "
                             "2 <= shortest <= longest (single characters have their own embedding)")
        if ngram_buckets and ngram_buckets < 2:
            raise ValueError(f"ngram_buckets={ngram_buckets!r} is not allowed: 0 (none) or at least 2")
        if words and not ngram_buckets:
            raise ValueError("words=True needs ngram_buckets > 0: whole words share the n-grams' hashed table")
        self.cell, self.pooling = cell, pooling
        self.ngram_buckets, self.ngram_orders, self.words = int(ngram_buckets), orders, bool(words)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_INDEX)
        self.ngrams = nn.Embedding(self.ngram_buckets, embedding_dim, padding_idx=0) if ngram_buckets else None
        self.conv = (nn.Conv1d(embedding_dim, conv_channels, kernel_size, padding=kernel_size // 2)
                     if conv_channels else None)
        rnn_class = nn.LSTM if cell.endswith("lstm") else nn.GRU
        self.rnn: nn.RNNBase = rnn_class(conv_channels or embedding_dim, hidden_size, num_layers, batch_first=True,
                                         bidirectional=cell.startswith("bi"))
        self.dropout = nn.Dropout(dropout)
        self.embedding_dropout = nn.Dropout(embedding_dropout)  # on the summed input vectors, before the cells
        directions = 2 if self.rnn.bidirectional else 1
        self.classifier = nn.Linear((2 if pooling == "meanmax" else 1) * directions * hidden_size, num_classes)

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(codes.shape[1], device=codes.device)[None, :] < lengths[:, None]
        embedded = self.embedding(codes)
        if self.ngrams is not None:
            ids = ending_ngram_ids(codes, lengths, self.ngram_orders, self.ngram_buckets)  # [B, T, orders]
            if self.words:  # the whole word, at its last character
                ids = torch.cat([ids, word_ids(codes, self.ngram_buckets)[..., None]], dim=2)
            embedded = embedded + self.ngrams(ids).sum(2)
        features = self.embedding_dropout(embedded) * valid.unsqueeze(-1)  # [B, T, E], padding exactly zero
        if self.conv is not None:
            features = torch.relu(self.conv(features.transpose(1, 2))).transpose(1, 2)  # [B, T, C]
        # pack_padded_sequence wants lengths on the CPU; enforce_sorted=False
        # sorts internally and returns the final states in the batch's order.
        packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final_states = self.rnn(packed)
        if self.pooling == "last":
            if isinstance(final_states, tuple):  # LSTM returns (h_n, c_n)
                final_states = final_states[0]
            pooled = self._top_layer(final_states)
        else:
            steps, _ = pad_packed_sequence(outputs, batch_first=True, total_length=codes.shape[1])  # [B, T, D*H]
            mask = valid.unsqueeze(-1)
            parts = []
            if self.pooling in ("mean", "meanmax"):
                parts.append((steps * mask).sum(1) / lengths.clamp(min=1).unsqueeze(1).to(steps.dtype))
            if self.pooling in ("max", "meanmax"):
                parts.append(steps.masked_fill(~mask, float("-inf")).amax(1))
            pooled = torch.cat(parts, dim=1)
        return self.classifier(self.dropout(pooled))

    def _top_layer(self, final_states: torch.Tensor) -> torch.Tensor:
        """The top layer's final hidden state; for a bidirectional cell, both directions concatenated.

        ``final_states`` is ``[layers * directions, B, H]``, layer-major, so the
        top layer's directions are the last ``directions`` entries (forward, backward).
        """
        directions = 2 if self.rnn.bidirectional else 1
        return torch.cat(list(final_states[-directions:]), dim=1)


def ending_ngram_ids(codes: torch.Tensor, lengths: torch.Tensor, orders: tuple[int, int],
                     buckets: int) -> torch.Tensor:
    """``[B, T, orders]``: at each position, the bucket id (``1..buckets-1``) of the n-gram of each order in
    ``orders`` (shortest, longest) that ends there, the name's start framed by boundary symbols; 0 on padding.
    All orders share one hashed table (each order hashed with its own salt); the model sums their embeddings
    with the character's, so position t sees e.g. "ann" and "nn" beside "n"."""
    batch, width = codes.shape
    longest = orders[1]
    framed = torch.cat([torch.full((batch, longest - 1), BOUNDARY_CODE, dtype=torch.int64, device=codes.device),
                        codes], dim=1)
    valid = torch.arange(width, device=codes.device)[None, :] < lengths[:, None]
    ids = []
    for n in range(orders[0], orders[1] + 1):
        gram = torch.zeros((batch, width), dtype=torch.int64, device=codes.device)
        for offset in range(n):
            start = longest - n + offset
            gram = gram * _CODE_BASE + framed[:, start : start + width]
        ids.append(_bucket(gram, n, buckets) * valid)
    return torch.stack(ids, dim=-1)  # [B, T, orders]


def _bucket(values: torch.Tensor, salt: int, buckets: int) -> torch.Tensor:
    """Hash integer ``values`` into bucket ids ``1..buckets-1`` (0 stays free for padding)."""
    return (values * _HASH_MULTIPLIER + salt) % (buckets - 1) + 1


def _ngram_starts(orders: tuple[int, int], width: int) -> list[tuple[int, int]]:
    """(n, number of start positions) of each n-gram order over names padded to ``width`` and framed by
    two boundary symbols: the layout :func:`ngram_ids` and :func:`word_position_tags` share."""
    return [(n, width + 3 - n) for n in range(orders[0], min(orders[1], width + 2) + 1)]


def ngram_ids(codes: torch.Tensor, lengths: torch.Tensor, orders: tuple[int, int], buckets: int) -> torch.Tensor:
    """``[B, P]`` bucket ids in ``1..buckets-1`` of every character n-gram (``orders`` = (shortest, longest))
    of each name framed by boundary symbols; 0 where a position holds no n-gram (padding).

    "anna" with orders (1, 2) gives the ids of ^ a n n a $ and ^a an nn na a$: hashing the n-grams
    (as fastText does) keeps the table a fixed size whatever the alphabet and the data.
    """
    batch, width = codes.shape
    framed = torch.full((batch, width + 2), PAD_INDEX, dtype=torch.int64, device=codes.device)
    framed[:, 1 : width + 1] = codes
    framed[:, 0] = BOUNDARY_CODE
    framed.scatter_(1, (lengths + 1)[:, None].to(torch.int64), BOUNDARY_CODE)
    framed_lengths = (lengths + 2)[:, None]
    positions = torch.arange(width + 2, device=codes.device)[None, :]
    ids = []
    for n, starts in _ngram_starts(orders, width):
        ngram = torch.zeros((batch, starts), dtype=torch.int64, device=codes.device)
        for offset in range(n):
            ngram = ngram * _CODE_BASE + framed[:, offset : offset + starts]
        hashed = _bucket(ngram, n, buckets)
        inside = positions[:, :starts] + n <= framed_lengths
        ids.append(hashed * inside)
    return torch.cat(ids, dim=1)


def word_position_tags(codes: torch.Tensor, lengths: torch.Tensor, orders: tuple[int, int]) -> torch.Tensor:
    """For every n-gram position of :func:`ngram_ids`, the word it starts in: 0 the first word, 1 the last,
    2 one in between. A surname's "son" and a given name's "son" then also get ids of their own."""
    batch, width = codes.shape
    word_index = torch.cumsum((codes == SPACE_CODE).long(), dim=1)
    words = word_index.gather(1, (lengths - 1)[:, None].to(torch.int64)) + 1
    tags = torch.where(word_index == 0, 0, torch.where(word_index == words - 1, 1, 2))
    # in the framed name, position p is character p - 1; the frames take their neighbour's tag
    framed = torch.cat([tags[:, :1], tags, tags[:, -1:], tags[:, -1:]], dim=1)
    return torch.cat([framed[:, :starts] for _, starts in _ngram_starts(orders, width)], dim=1)


def word_ids(codes: torch.Tensor, buckets: int) -> torch.Tensor:
    """``[B, T]`` bucket ids of whole words (space-separated), at each word's last character; 0 elsewhere."""
    batch, width = codes.shape
    running = torch.zeros(batch, dtype=torch.int64, device=codes.device)
    ids = torch.zeros((batch, width), dtype=torch.int64, device=codes.device)
    outside = (codes == SPACE_CODE) | (codes == PAD_INDEX)
    for t in range(width):
        running = torch.where(outside[:, t], 0, (running * _CODE_BASE + codes[:, t]) % _WORD_HASH_MODULUS)
        word_ends = ~outside[:, t] & (outside[:, t + 1] if t + 1 < width else True)
        ids[:, t] = torch.where(word_ends, _bucket(running, 7, buckets), 0)
    return ids


class NgramBagClassifier(nn.Module):
    """``forward(codes [B, T], lengths [B]) -> logits``: a bag of hashed character n-grams and words.

    Every n-gram of orders ``ngram_orders`` (of the name framed by boundary symbols), with
    ``word_positions`` every n-gram once more tagged with its word (first, last, other), and with
    ``words`` every whole word is hashed into one of ``buckets`` embedding rows of size ``dim``; the
    name's vector is their sum divided by the square root of their number, then dropout and a linear
    layer. With ``recurrent_hidden > 0`` a bidirectional GRU over character embeddings adds its final
    states to that vector (an option for ablations: on the 5-class task it did not help).
    It is the neural counterpart of the linear yardstick's TF-IDF features, trainable with any loss.
    """

    def __init__(self, num_classes: int, *, buckets: int = 2**16, dim: int = 64, ngram_orders=(1, 5),
                 words: bool = True, word_positions: bool = True, dropout: float = 0.5, recurrent_hidden: int = 0):
        super().__init__()
        orders = tuple(ngram_orders)
        if len(orders) != 2 or not 1 <= orders[0] <= orders[1]:
            raise ValueError(f"ngram_orders={ngram_orders!r} is not allowed: expected (shortest, longest) "
                             f"with 1 <= shortest <= longest")
        if buckets < 2:
            raise ValueError(f"buckets={buckets!r} is not allowed: expected at least 2")
        self.buckets, self.ngram_orders, self.words = int(buckets), orders, bool(words)
        self.word_positions = bool(word_positions)
        self.bag = nn.Embedding(self.buckets, dim, padding_idx=0)
        nn.init.normal_(self.bag.weight, std=0.05)
        with torch.no_grad():
            self.bag.weight[0].zero_()
        features = dim
        self.recurrent = None
        if recurrent_hidden:
            self.characters = nn.Embedding(VOCAB_SIZE, dim, padding_idx=PAD_INDEX)
            self.recurrent = nn.GRU(dim, recurrent_hidden, batch_first=True, bidirectional=True)
            features += 2 * recurrent_hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids = ngram_ids(codes, lengths, self.ngram_orders, self.buckets)
        if self.word_positions:  # each n-gram a second time, hashed with the word it stands in
            tags = word_position_tags(codes, lengths, self.ngram_orders)
            tagged = _bucket(ids * 3 + tags, 0, self.buckets)
            ids = torch.cat([ids, tagged * (ids > 0)], dim=1)
        if self.words:
            ids = torch.cat([ids, word_ids(codes, self.buckets)], dim=1)
        present = ids > 0  # row 0 is zero and frozen (padding_idx); masking keeps padding out regardless
        counts = present.sum(1, keepdim=True).clamp(min=1)
        features = [(self.bag(ids) * present.unsqueeze(-1)).sum(1) / counts.sqrt()]
        if self.recurrent is not None:
            packed = pack_padded_sequence(self.characters(codes), lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, final_states = self.recurrent(packed)
            features.append(torch.cat([final_states[-2], final_states[-1]], dim=1))
        return self.classifier(self.dropout(torch.cat(features, dim=1)))


NAME_MODELS = {"name_ngram": NgramBagClassifier, "name_rnn": NameClassifier}  # models.make_model's names
# A names study's model and training, by name. The notebook's own parameters override single values.
NAME_MODEL_CONFIGS = {
    # The recurrent default; built with earlier rounds of benchmarks/names_rnn_tuning.py on validation of k-fold
    # partition 1, a re-partition of the names the studies test on partition 0 (so on evaluated test names), then
    # re-checked on the tuning share alone (never evaluated; 5 classes), which kept it: see docs/names-tuning.md.
    "rnn": {
        "model": "name_rnn",
        "model_options": {"embedding_dim": 64, "conv_channels": 0, "hidden_size": 64, "num_layers": 1,
                          "cell": "bigru", "pooling": "meanmax", "ngram_buckets": 2**15, "ngram_orders": (2, 4),
                          "dropout": 0.5},
        "epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 5e-3, "weight_decay": 0.1,
        "schedule": "onecycle", "label_smoothing": 0.0, "augment": True, "name_switch": 0.5,
        # All 42 nationalities train the same schedule: on that task's validation (partition 1, fold 0, names the
        # evaluated folds also test; not re-checked on the tuning share) it was better than 4 epochs at batch 256
        # or 128 units at 4 epochs (docs/names-tuning.md, round 2); the cpu profile shortens it to 4 epochs at
        # batch 256 to fit its 40 minutes.
    },
    "ngram-bag": {
        # Chosen on random splits whose validation names the evaluated folds also test; not re-checked on the
        # tuning share (docs/names-tuning.md). 2^17 buckets: better than 2^16 on the validation split of both
        # tasks (42 classes: worst-class TPR 0.090 against 0.067, seeds 0-2), at about 1.3x the time of a
        # 42-class run.
        "model": "name_ngram", "model_options": {"buckets": 2**17},
        "epochs": 6, "batch_size": 128, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1,
        "schedule": "onecycle", "label_smoothing": 0.0, "augment": False,
        # All 42 nationalities (5x the training names): batch 256 at lr 5e-3, chosen on that task's validation
        # split (seeds 0-2, 2 threads: accuracy 0.598 against 0.599 with batch 128, worst-class TPR 0.102
        # against 0.090) at 0.7x the time of a run; on the 5-class task it was worse on validation.
        "by_classes": {"all": {"batch_size": 256, "lr": 5e-3}},
    },
    # The draft author's final recipe (name-ethnicity-classifier/nec-experiments, src/final_model/: model.py,
    # train_setup.py, nameEthnicityDataset.py, x-manager/21_nat_and_else_1/train_stats.json): embedding 200 ->
    # one Conv1d (64 channels, kernel 3) + ReLU -> 2-layer LSTM (200) -> last step -> dropout 0.3 -> linear;
    # Adam lr 3.5e-3 with weight decay 1e-5 (here AdamW: at 1e-5 the two differ negligibly), lr x 0.9875 every
    # 100 steps, NLL loss (no label smoothing), his name switch on 25 % of the training names, batch 512 of his
    # 512-1000, 20 epochs of his 15-25.
    "author": {
        "model": "name_rnn", "model_options": {"dropout": 0.3},
        "epochs": 20, "batch_size": 512, "optimizer": "adamw", "lr": 3.5e-3, "weight_decay": 1e-5,
        "schedule": "step", "label_smoothing": 0.0, "augment": True,
    },
}


def name_model_parameters(model_config: str, overrides: dict | None = None, classes=None) -> dict:
    """A names study's parameters: ``NAME_MODEL_CONFIGS[model_config]``, then its values for ``classes``
    (``by_classes``, e.g. ``"all"``), then every override that is not None (``model_options`` are merged key
    by key). Refuses an unknown configuration by name."""
    if model_config not in NAME_MODEL_CONFIGS:
        raise ValueError(f"model_config={model_config!r} is not known; choose one of {tuple(NAME_MODEL_CONFIGS)}")
    parameters = dict(NAME_MODEL_CONFIGS[model_config])
    by_classes = parameters.pop("by_classes", {})
    if isinstance(classes, str):
        parameters.update(by_classes.get(classes, {}))
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    model_options = {**parameters["model_options"], **overrides.pop("model_options", {})}
    model_class = NAME_MODELS[parameters["model"]]
    allowed = [name for name in inspect.signature(model_class).parameters if name != "num_classes"]
    unknown = sorted(set(model_options) - set(allowed))
    if unknown:
        raise ValueError(f"model_options {unknown} are not options of {model_class.__name__} "
                         f"(model_config={model_config!r}); allowed: {allowed}")
    return {**parameters, **overrides, "model_options": model_options}


@torch.no_grad()
def predict_nationalities(model: nn.Module, names: list[str], classes: Sequence[str], k: int = 3) -> list[dict]:
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
