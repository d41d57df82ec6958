"""Fashion-MNIST, found offline when possible, preloaded once as tensors on the device.

Why not a `DataLoader` with `ToTensor`? That pipeline converts every image from PIL,
one at a time, every epoch. Fashion-MNIST is small (about 220 MB as float32), so we
convert it once, keep it on the device, and cut batches by indexing: an epoch then
costs only the model's own work.
"""

import functools
import gzip
import math
import numbers
import os
import shutil
import socket
from pathlib import Path

import torch

from helpers.training import default_device

TEXT_LABELS = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CACHE_DIR = Path(__file__).resolve().parent.parent / "data"   # git-ignored
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")       # apt install dataset-fashion-mnist
MAX_BATCH_SIZE = 60_000


def text_labels(labels):
    """Class names for a sequence or tensor of class indices."""
    return [TEXT_LABELS[int(i)] for i in labels]


class TensorBatches:
    """Mini-batches `(X, y)` cut from tensors that already live on the device.

    With `shuffle=True` the order is drawn anew on every pass (each epoch); the last,
    smaller batch is kept, so every example is seen once per epoch.
    """

    def __init__(self, X, y, batch_size, shuffle):
        self.X, self.y = X, y
        self.batch_size, self.shuffle = batch_size, shuffle

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        n, b = len(self.y), self.batch_size
        if not self.shuffle:
            for i in range(0, n, b):
                yield self.X[i:i + b], self.y[i:i + b]
            return
        order = torch.randperm(n, device=self.y.device)
        for i in range(0, n, b):
            idx = order[i:i + b]
            yield self.X[idx], self.y[idx]

    @property
    def device(self):
        return self.X.device


def load_fashion_mnist(batch_size, *, device=None, root=None, num_train=None):
    """Return `(train_iter, test_iter)` over Fashion-MNIST, with every tensor on `device`.

    `X` is float32 of shape `(B, 1, 28, 28)` with values in [0, 1]; `y` is int64 `(B,)`.
    The training iterator reshuffles every epoch; the test iterator keeps a fixed order.
    `num_train` keeps only the first `num_train` training images (for overfitting
    experiments on a small set). The data is read and moved to the device once per
    process; later calls, with any batch size, reuse it.
    """
    _check_batch_size(batch_size)
    device = torch.device(device) if device is not None else default_device()
    X_train, y_train, X_test, y_test = _tensors_on(str(device), _find_raw_folder(root))
    if num_train is not None:
        if not (isinstance(num_train, numbers.Integral) and 1 <= num_train <= len(y_train)):
            raise ValueError(f"num_train must be a whole number from 1 to {len(y_train)}, "
                             f"got {num_train!r}")
        X_train, y_train = X_train[:num_train], y_train[:num_train]
    return (TensorBatches(X_train, y_train, int(batch_size), shuffle=True),
            TensorBatches(X_test, y_test, int(batch_size), shuffle=False))


def _check_batch_size(batch_size):
    ok = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not ok or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}, "
                         f"got {batch_size!r}")


@functools.cache
def _tensors_on(device, raw_folder):
    """Parse the four IDX files with torchvision and move them to `device`, once."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    def images(name):
        return (read_image_file(str(Path(raw_folder) / FILES[name])).unsqueeze(1)
                .to(device).float().div_(255))

    def labels(name):
        return read_label_file(str(Path(raw_folder) / FILES[name])).long().to(device)

    return (images("train_images"), labels("train_labels"),
            images("test_images"), labels("test_labels"))


def _find_raw_folder(root=None):
    """The folder holding the four uncompressed IDX files, from the first source that has them.

    Order: `root`, then `$FASHION_MNIST_DIR`, then the project's cache `data/`, then
    Debian's folder, then a torchvision download into the cache. Gzipped files are
    unpacked into the cache once, so the next call finds them there.
    """
    cache_raw = CACHE_DIR / "FashionMNIST" / "raw"
    env_dir = os.environ.get("FASHION_MNIST_DIR")
    tried = []
    for folder in (root, env_dir, CACHE_DIR, DEBIAN_DIR):
        if not folder:
            continue
        tried.append(str(folder))
        for candidate in (Path(folder), Path(folder) / "FashionMNIST" / "raw"):
            if _has_files(candidate, ""):
                return str(candidate)
            if _has_files(candidate, ".gz"):
                _unpack(candidate, cache_raw)
                return str(cache_raw)
    tried.append("download with torchvision")
    if _download(CACHE_DIR):
        return str(cache_raw)
    raise FileNotFoundError(
        "Fashion-MNIST was not found (looked in: " + "; ".join(tried) + "). Fix it one of "
        "three ways: (1) on Debian/Ubuntu, `sudo apt install dataset-fashion-mnist`; "
        "(2) set FASHION_MNIST_DIR to a folder holding the four files "
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; "
        f"(3) connect to the internet once, and it is downloaded into {CACHE_DIR}.")


def _has_files(folder, suffix):
    return all((folder / (name + suffix)).is_file() for name in FILES.values())


def _unpack(src, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        tmp = dest / (name + ".part")
        with gzip.open(src / (name + ".gz"), "rb") as f_in, open(tmp, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
        tmp.replace(dest / name)


def _download(cache_dir, timeout=10):
    """Let torchvision download into the cache; False (quickly) when offline."""
    from torchvision.datasets import FashionMNIST

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)   # offline, fail in seconds rather than hang
    try:
        FashionMNIST(str(cache_dir), train=True, download=True)
        FashionMNIST(str(cache_dir), train=False, download=True)
        return True
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(old_timeout)
