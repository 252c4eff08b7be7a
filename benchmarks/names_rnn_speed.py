"""Speed of the recurrent names model on this machine: training names per second and seconds a run.

    python benchmarks/names_rnn_speed.py                 # 5 classes, fold 0 of 5, 1 and 2 threads
    python benchmarks/names_rnn_speed.py --classes all   # 42 classes
    python benchmarks/names_rnn_speed.py --quick         # 40 names a class: checks the script only

For the model configuration (``--config``, default ``rnn``) it times one training epoch (after a warm-up
of a few batches) in several forms: packed sequences (the model as used: exact, padding never reaches
a name's logits) against plain padded batches fed to the recurrent layer (faster on the CPU, but the
backward direction then reads the padding first: shown for the price only, not used); length-bucketed
batches (``sort_chunk_batches=50``, the default) against plain shuffling; batch sizes; one thread against
two. ``s / run`` is the epoch time times the configuration's epochs, plus one pass over validation and
test. Output: ``<out>/names_rnn_speed_<classes>.md`` and ``.json`` (default ``results/benchmarks/``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

import common
from lbw_utils.models import make_model
from lbw_utils.models.recurrent import NameClassifier, name_model_parameters
from lbw_utils.data.names import load_names
from lbw_utils.train import predict, seed_everything


class PaddedRecurrent(nn.Module):
    """The same network with the recurrent layer run on the padded batch (no packing): for timing only."""

    def __init__(self, model: NameClassifier):
        super().__init__()
        self.model = model

    def forward(self, codes, lengths):
        m = self.model
        valid = torch.arange(codes.shape[1])[None, :] < lengths[:, None]
        embedded = m.embedding(codes)
        if m.ngrams is not None:
            from lbw_utils.models.recurrent import ending_ngram_ids

            embedded = embedded + m.ngrams(ending_ngram_ids(codes, lengths, m.ngram_orders, m.ngram_buckets)).sum(2)
        features = embedded * valid.unsqueeze(-1)
        if m.conv is not None:
            features = torch.relu(m.conv(features.transpose(1, 2))).transpose(1, 2)
        steps, _ = m.rnn(features)
        mask = valid.unsqueeze(-1)
        pooled = torch.cat([(steps * mask).sum(1) / lengths.unsqueeze(1),
                            steps.masked_fill(~mask, float("-inf")).amax(1)], dim=1)
        return m.classifier(m.dropout(pooled))


def epoch_seconds(network: nn.Module, data, batch_size: int, lr: float, warmup_batches: int = 3) -> float:
    """Seconds of one training epoch (AdamW, cross-entropy), after ``warmup_batches`` untimed batches."""
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr)
    network.train()
    generator = torch.Generator().manual_seed(0)
    batches = list(data.batches("train", batch_size, shuffle=True, generator=generator))
    for inputs, targets in batches[:warmup_batches]:
        nn.functional.cross_entropy(network(*inputs), targets).backward()
        optimizer.zero_grad()
    started = time.perf_counter()
    for inputs, targets in batches:
        loss = nn.functional.cross_entropy(network(*inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--classes", default="paper", help="paper (5 classes) or all (42)")
    p.add_argument("--config", default="rnn", help="a names model configuration (NAME_MODEL_CONFIGS)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    p.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    device = common.setup(args)
    parameters = name_model_parameters(args.config, classes=args.classes)
    batch_sizes = args.batch_sizes or sorted({parameters["batch_size"], 2 * parameters["batch_size"]})
    per_class = 40 if args.quick else None
    rows = []
    datasets = {chunk: load_names(args.classes, data_dir=args.data_dir, folds=5, seed=0, device=device,
                                  per_class=per_class, sort_chunk_batches=chunk) for chunk in (50, 0)}
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        for batch_size in batch_sizes:
            for form, chunk in (("packed, bucketed", 50), ("packed, plain shuffle", 0), ("padded, bucketed", 50)):
                if form != "packed, bucketed" and batch_size != parameters["batch_size"]:
                    continue
                data = datasets[chunk]
                seed_everything(0)
                network = make_model(parameters["model"], num_classes=data.num_classes,
                                     **parameters["model_options"])
                timed = PaddedRecurrent(network) if form.startswith("padded") else network
                seconds = epoch_seconds(timed, data, batch_size, parameters["lr"])
                started = time.perf_counter()
                for split in ("val", "test"):
                    predict(network, data, split)
                evaluate = time.perf_counter() - started
                rows.append({"threads": threads, "batch": batch_size, "form": form,
                             "train names/s": round(data.size("train") / seconds),
                             "s / epoch": round(seconds, 2),
                             "s / run": round(parameters["epochs"] * (seconds + evaluate / 2) + evaluate / 2, 1)})
                print(rows[-1], flush=True)
    title = (f"Recurrent names model {args.config!r} speed, classes={args.classes}, fold 0 of 5 "
             f"({parameters['epochs']} epochs a run; {common.environment(device).get('cpu', {}).get('model', device)})")
    common.write_outputs(args.out, f"names_rnn_speed_{args.classes}" + ("_quick" if args.quick else ""),
                         {"environment": common.environment(device), "config": args.config,
                          "parameters": parameters, "rows": rows}, {title: common.markdown_table(rows)})


if __name__ == "__main__":
    main()
