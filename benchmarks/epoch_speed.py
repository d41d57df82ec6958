"""Seconds per epoch: preloaded device tensors vs a per-sample DataLoader, in one run.

    python benchmarks/epoch_speed.py                  # default device, 3 epochs each
    python benchmarks/epoch_speed.py --device cpu --epochs 5

Every row trains the same 784-256-10 MLP with SGD (lr 0.1, batch 256) for the same number
of epochs, from the same seed. The rows differ only in where the batches come from and
whether the live plot draws. Times are wall-clock per epoch, test evaluation included
(what a student waits for), and reported as ratios to the DataLoader row measured in the
same run, so machines of different speed can be compared.
"""

import argparse
import contextlib
import io
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from helpers import LivePlot, default_device, load_fashion_mnist, set_seed, train
from helpers.data import FILES, _find_raw_folder


def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def timed_train(train_iter, test_iter, epochs, device, plot=False):
    set_seed(0)
    net = make_mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):     # LivePlot prints a line per epoch
        history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), epochs, optimizer,
                        device=device, plot=plot)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs, history.test_acc[-1]


def bare_loop(train_iter, epochs, device):
    """The least a training epoch can cost: no metrics, no evaluation."""
    set_seed(0)
    net = make_mlp().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        for X, y in train_iter:
            optimizer.zero_grad()
            loss(net(X), y).backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def torchvision_root(tmp):
    """A root in torchvision's layout (FashionMNIST/raw/...) for the same files."""
    raw = Path(_find_raw_folder())
    if raw.parts[-2:] == ("FashionMNIST", "raw"):
        return str(raw.parent.parent)
    linked = Path(tmp) / "FashionMNIST" / "raw"
    linked.mkdir(parents=True)
    for name in FILES.values():
        os.symlink(raw / name, linked / name)
    return tmp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: helpers.default_device()")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    epochs, batch_size = args.epochs, 256

    start = time.perf_counter()
    train_iter, test_iter = load_fashion_mnist(batch_size, device=device)
    load_seconds = time.perf_counter() - start

    # The baseline deliberately uses 4 workers, as the reference book does, even on 2 cores.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(tmp)
        to_tensor = transforms.ToTensor()
        pin = device.type == "cuda"
        loader_train = DataLoader(datasets.FashionMNIST(root, train=True, transform=to_tensor),
                                  batch_size, shuffle=True, num_workers=args.workers,
                                  pin_memory=pin)
        loader_test = DataLoader(datasets.FashionMNIST(root, train=False, transform=to_tensor),
                                 batch_size, shuffle=False, num_workers=args.workers,
                                 pin_memory=pin)
        rows = [(f"DataLoader + ToTensor, {args.workers} workers",
                 *timed_train(loader_train, loader_test, epochs, device))]

    rows.append(("helpers: preloaded tensors, plot off",
                 *timed_train(train_iter, test_iter, epochs, device)))
    rows.append(("helpers: preloaded tensors, live plot",
                 *timed_train(train_iter, test_iter, epochs, device, plot=LivePlot(epochs))))
    rows.append(("bare loop over preloaded tensors", bare_loop(train_iter, epochs, device),
                 None))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"torch {torch.__version__}; {epochs} epochs each; "
          f"first load {load_seconds:.1f} s\n")
    baseline = rows[0][1]
    print("| pipeline | s/epoch | speed-up vs DataLoader | test acc |")
    print("|---|---:|---:|---:|")
    for label, seconds, acc in rows:
        acc_text = f"{acc:.3f}" if acc is not None else "-"
        print(f"| {label} | {seconds:.2f} | {baseline / seconds:.1f}x | {acc_text} |")
    plot_cost = rows[2][1] / rows[1][1] - 1
    print(f"\nlive plot overhead: {plot_cost:+.0%} per epoch")


if __name__ == "__main__":
    main()
