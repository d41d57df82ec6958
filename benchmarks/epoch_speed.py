"""Seconds per epoch: preloaded device tensors vs a per-sample DataLoader, in one run.

    python benchmarks/epoch_speed.py                  # default device
    python benchmarks/epoch_speed.py --device cpu --epochs 5 --rounds 3

Every row trains the same 784-256-10 MLP with SGD (lr 0.1, batch 256) from the same seed.
The rows differ only in where the batches come from, whether the live plot draws (into an
image widget, as in the playground), and whether metrics and the test pass are computed.
Times are wall-clock per epoch, test evaluation included (what a student waits for), and
reported as ratios to the DataLoader row measured in the same run, so machines of
different speed can be compared. The preloaded rows take turns, `--rounds` times, and each
reports its median round: a busy moment of the machine then hits every row alike.
"""

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import ipywidgets as widgets
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from helpers import LivePlot, default_device, load_fashion_mnist, set_seed, train
from helpers.data import FILES, _find_raw_folder
from helpers.training import EVAL_BATCH_SIZE


def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def timed_train(train_iter, test_iter, epochs, device, plot=False):
    set_seed(0)
    net = make_mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):     # train may print a line (diverged)
        history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), epochs, optimizer,
                        device=device, plot=plot)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs, history.test_acc[-1]


def bare_loop(train_iter, epochs, device, test_iter=None):
    """The least a training epoch can cost: no metrics; a test pass only if `test_iter`."""
    set_seed(0)
    net = make_mlp().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for X, y in train_iter:
            optimizer.zero_grad()
            loss(net(X), y).backward()
            optimizer.step()
        if test_iter is not None:                 # the same test pass as helpers.train
            net.eval()
            with torch.no_grad():
                results = [(loss(y_hat := net(X), y), (y_hat.argmax(1) == y).sum())
                           for X, y in test_iter.with_batch_size(EVAL_BATCH_SIZE)]
            torch.stack([torch.stack(r) for r in results]).sum(0).tolist()
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
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run")
    parser.add_argument("--rounds", type=int, default=6, help="runs of each preloaded row")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    epochs, batch_size = args.epochs, 256

    start = time.perf_counter()
    train_iter, test_iter = load_fashion_mnist(batch_size, device=device)
    load_seconds = time.perf_counter() - start

    preloaded = {
        "helpers.train, plot off": lambda: timed_train(train_iter, test_iter, epochs, device),
        "helpers.train, live plot": lambda: timed_train(
            train_iter, test_iter, epochs, device,
            plot=LivePlot(epochs, image=widgets.Image(), progress=widgets.IntProgress(),
                          status=widgets.Label())),
        "bare loop + the same test pass": lambda: (
            bare_loop(train_iter, epochs, device, test_iter), None),
        "bare loop, no test pass": lambda: (bare_loop(train_iter, epochs, device), None),
    }
    results = {label: [] for label in preloaded}
    labels = list(preloaded)
    for round_ in range(args.rounds):                 # rotate the order: no row always first
        for label in labels[round_ % len(labels):] + labels[:round_ % len(labels)]:
            results[label].append(preloaded[label]())
    # Last, so that its worker processes cannot disturb the rows above. It deliberately
    # uses 4 workers, as the reference book does, even on 2 cores.
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
        dataloader = timed_train(loader_train, loader_test, min(epochs, 2), device)

    rows = [(f"DataLoader + ToTensor, {args.workers} workers", *dataloader)]
    for label, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        rows.append((label, seconds, runs[0][1]))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"torch {torch.__version__}; {epochs} epochs per run, median of {args.rounds} "
          f"rounds (DataLoader: {min(epochs, 2)} epochs, once); first load {load_seconds:.1f} s\n")
    baseline = rows[0][1]
    print("| pipeline | s/epoch | speed-up vs DataLoader | test acc |")
    print("|---|---:|---:|---:|")
    for label, seconds, acc in rows:
        acc_text = f"{acc:.3f}" if acc is not None else "-"
        print(f"| {label} | {seconds:.3f} | {baseline / seconds:.1f}x | {acc_text} |")

    def extra(row, base):
        """Median over rounds of row / base - 1, each pair timed back to back."""
        return statistics.median(a / b - 1 for (a, _), (b, _) in
                                 zip(results[labels[row]], results[labels[base]]))

    print("\nextra time per epoch, the median of paired runs (each round times every row "
          "back to back):")
    print(f"- helpers.train vs the bare loop with the same test pass: {extra(0, 2):+.1%} "
          "(its running loss and accuracy)")
    print(f"- the test pass itself: {extra(2, 3):+.1%}; helpers.train vs the bare loop "
          f"without a test pass: {extra(0, 3):+.1%}")
    print(f"- the live plot: {extra(1, 0):+.1%}")

if __name__ == "__main__":
    main()
