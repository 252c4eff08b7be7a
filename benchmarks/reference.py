"""The plain reference the benchmarks compare against: what a typical PyTorch script does.

torchvision dataset + per-sample transforms (``ToTensor`` + ``Normalize``, plus
``RandomCrop``/``RandomHorizontalFlip`` when augmenting) + ``DataLoader``, fp32,
default (contiguous) memory format, the loss read back with ``.item()`` every
step, as tutorials do. The network, optimiser (SGD with Nesterov momentum, no
decay on BN/bias), triangular learning-rate schedule stepped per batch, label
smoothing and batch size are the same as ours, and it trains on exactly the
same images: the indices of our seeded stratified split are recomputed here
with the library's own functions and checked against the loaded data.
"""

from __future__ import annotations

import math
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from lbw_utils.config import data_dir as resolve_data_dir
from lbw_utils.data.images import take_per_class, stratified_split
from lbw_utils.models import make_model


def split_indices(dataset: str, labels_train: torch.Tensor, labels_test: torch.Tensor, *, seed: int,
                  val_size, per_class: int | None):
    """Indices (into torchvision's train / test sets) of our training split and test set."""
    generator = torch.Generator().manual_seed(seed)
    train_pool = torch.arange(len(labels_train))
    test_index = torch.arange(len(labels_test))
    pool_labels = labels_train
    if per_class is not None:  # the same draws, in the same order, as load_image_dataset
        train_pool, pool_labels = take_per_class(train_pool, labels_train, per_class, generator, "training set")
        test_index, _ = take_per_class(test_index, labels_test, per_class, generator, "test set")
    train_positions, _ = stratified_split(pool_labels, val_size, generator)
    return train_pool[train_positions], test_index


def torchvision_sets(dataset: str, *, augment: bool, mean, std, data_dir=None):
    root = str(resolve_data_dir(data_dir))
    normalize = [transforms.ToTensor(), transforms.Normalize(tuple(mean), tuple(std))]
    extra = []
    if augment:
        size = 28 if dataset == "fashion_mnist" else 32
        extra = [transforms.RandomCrop(size, padding=2, padding_mode="reflect"), transforms.RandomHorizontalFlip()]
    train_tf, test_tf = transforms.Compose(extra + normalize), transforms.Compose(normalize)
    if dataset == "fashion_mnist":
        cls = torchvision.datasets.FashionMNIST
    else:
        cls = torchvision.datasets.CIFAR10
    train = cls(root, train=True, download=False, transform=train_tf)
    test = cls(root, train=False, download=False, transform=test_tf)
    return train, test


class Reference:
    """A plain training setup for one run; ``train_epoch`` and ``evaluate`` are the whole loop."""

    def __init__(self, dataset: str, data, *, seed: int, epochs: int, batch_size: int, lr: float,
                 momentum: float = 0.9, weight_decay: float = 5e-4, label_smoothing: float = 0.1,
                 warmup_fraction: float = 0.2, augment: bool = False, model_size: str = "small",
                 workers: int = 0, val_size=5000, per_class=None, eval_batch_size: int = 1024,
                 device: torch.device = torch.device("cpu"), data_dir=None):
        self.device = device
        train_set, test_set = torchvision_sets(dataset, augment=augment, mean=data.mean.tolist(),
                                               std=data.std.tolist(), data_dir=data_dir)
        train_index, test_index = split_indices(dataset, torch.as_tensor(train_set.targets),
                                                torch.as_tensor(test_set.targets), seed=seed,
                                                val_size=val_size, per_class=per_class)
        ours = data.labels("train").cpu()
        theirs = torch.as_tensor(train_set.targets)[train_index]
        if not torch.equal(ours, theirs):
            raise RuntimeError("the reference's training split differs from ours")
        torch.manual_seed(seed)
        self.model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape,
                                size=model_size).to(device)
        self.model.init_from_data(data)  # as fit() does: a whitening stem is set from the training images
        pin = device.type == "cuda"
        loader_generator = torch.Generator().manual_seed(seed)
        self.train_loader = DataLoader(Subset(train_set, train_index.tolist()), batch_size=batch_size,
                                       shuffle=True, num_workers=workers, pin_memory=pin,
                                       generator=loader_generator)
        self.test_loader = DataLoader(Subset(test_set, test_index.tolist()), batch_size=eval_batch_size,
                                      shuffle=False, num_workers=workers, pin_memory=pin)
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                                          {"params": no_decay, "weight_decay": 0.0}],
                                         lr=lr, momentum=momentum, nesterov=True)
        total = math.ceil(len(train_index) / batch_size) * epochs
        warmup = max(1, round(warmup_fraction * total))

        def triangular(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, triangular)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_size = len(train_index)
        self.test_size = len(test_index)

    def train_epoch(self, max_steps: int | None = None) -> dict:
        self.model.train()
        running, seen, steps = 0.0, 0, 0
        start = time.perf_counter()
        for images, targets in self.train_loader:
            images = images.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            logits = self.model(images)
            loss = self.loss_fn(logits, targets)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            running += loss.item() * len(targets)
            seen += len(targets)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        return {"seconds": time.perf_counter() - start, "loss": running / max(seen, 1), "images": seen,
                "steps": steps}

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        correct = total = 0
        for images, targets in self.test_loader:
            images, targets = images.to(self.device), targets.to(self.device)
            correct += (self.model(images).argmax(1) == targets).sum().item()
            total += len(targets)
        return correct / total
