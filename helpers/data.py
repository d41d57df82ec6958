"""Fashion-MNIST, found offline when possible, preloaded once as tensors on the device.

Why not a `DataLoader` with `ToTensor`? That pipeline converts every image from PIL,
one at a time, every epoch. Fashion-MNIST is small (about 220 MB as float32), so we
convert it once, keep it on the device, and cut batches by indexing: an epoch then
costs only the model's own work.

Every file is checked (its size and its IDX header) before it is parsed, so a truncated
or foreign file stops with one message that names it and says how to fix it.
"""

import functools
import gzip
import math
import numbers
import os
import shutil
import socket
import struct
import tempfile
import zlib
from pathlib import Path

import torch

from helpers.device import checked_device, default_device

TEXT_LABELS = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")

# name: (file name, IDX header: magic number and sizes). Images are 28 x 28 bytes each.
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
HEADERS = {
    "train-images-idx3-ubyte": (0x0803, 60_000, 28, 28),
    "train-labels-idx1-ubyte": (0x0801, 60_000),
    "t10k-images-idx3-ubyte": (0x0803, 10_000, 28, 28),
    "t10k-labels-idx1-ubyte": (0x0801, 10_000),
}
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")       # apt install dataset-fashion-mnist
MAX_BATCH_SIZE = 60_000
SOURCES_HELP = ("(1) on Debian/Ubuntu, `sudo apt install dataset-fashion-mnist`; "
                "(2) set FASHION_MNIST_DIR to a folder holding the four files "
                "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; "
                "(3) connect to the internet once, and they are downloaded into the cache")


class BrokenDataError(RuntimeError):
    """A Fashion-MNIST file exists but is truncated, the wrong size or not an IDX file."""


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

    def with_batch_size(self, batch_size):
        """The same examples in batches of another size (evaluation can use bigger ones)."""
        return TensorBatches(self.X, self.y, batch_size, self.shuffle)

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
    device = checked_device(device) if device is not None else default_device()
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


# ------------------------------------------------------------------ finding the files

def cache_dir():
    """Where unpacked and downloaded files go: the project's `data/` in a writable checkout,
    else a per-user cache (`$XDG_CACHE_HOME/nn-fundamentals`, or `~/.cache/nn-fundamentals`).

    Never inside the Python environment: an installed (not editable) package uses the
    per-user cache.
    """
    project_data = PROJECT_DIR / "data"
    in_checkout = ((PROJECT_DIR / "pyproject.toml").is_file()
                   and not {"site-packages", "dist-packages"} & set(PROJECT_DIR.parts))
    if in_checkout and _writable(project_data):
        return project_data
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nn-fundamentals"


def _writable(folder):
    """True if `folder` exists or can be made, and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _find_raw_folder(root=None):
    """The folder holding the four uncompressed IDX files, from the first source that has them.

    Order: `root`, then `$FASHION_MNIST_DIR`, then the cache (`cache_dir()`), then Debian's
    folder, then a torchvision download into the cache. Gzipped files are unpacked into the
    cache once, so the next call finds them there. A folder you name (`root` or the
    variable) must hold good files: it is never skipped for another source.
    """
    env_dir = os.environ.get("FASHION_MNIST_DIR")
    cache = cache_dir()
    named = [(root, "root="), (env_dir, "FASHION_MNIST_DIR")]
    for folder, what in named:
        if folder:
            found = _use_folder(Path(folder), cache)
            if found is None:
                raise FileNotFoundError(
                    f"{what} {folder} has no Fashion-MNIST files (the four *-ubyte files, "
                    "gzipped or not, or torchvision's FashionMNIST/raw/ inside it). "
                    f"Point it at the right folder, or leave it unset to use: {SOURCES_HELP}")
            return found
    tried = []
    for folder in (cache, DEBIAN_DIR):
        tried.append(str(folder))
        found = _use_folder(folder, cache)
        if found is not None:
            return found
    tried.append("download with torchvision")
    if _writable(cache) and _download(cache):
        return _use_folder(cache, cache)
    raise FileNotFoundError(
        "Fashion-MNIST was not found (looked in: " + "; ".join(tried) + "). Fix it one of "
        f"three ways: {SOURCES_HELP} ({cache}).")


def _use_folder(folder, cache):
    """The raw folder to read from `folder` (unpacking .gz files into the cache), or None
    when `folder` holds no complete set. Broken files raise `BrokenDataError`."""
    for candidate in (folder, folder / "FashionMNIST" / "raw"):
        if _has_files(candidate, ""):
            for name in FILES.values():
                _check_idx_file(candidate / name, candidate)
            return str(candidate)
        if _has_files(candidate, ".gz"):
            return str(_unpack(candidate, cache / "FashionMNIST" / "raw"))
    return None


def _has_files(folder, suffix):
    return all((folder / (name + suffix)).is_file() for name in FILES.values())


def _check_idx_file(path, folder, source=None):
    """Raise `BrokenDataError` unless `path` has exactly the size and header it should.

    `source` is the gzipped file it was unpacked from, if any: that is the one to replace.
    """
    magic, *sizes = HEADERS[path.name.removesuffix(".part")]
    expected = 4 * (1 + len(sizes)) + math.prod(sizes)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4 * (1 + len(sizes)))
    problem = None
    if size != expected:
        problem = (f"it is {size:,} bytes, but should be {expected:,} "
                   f"({'truncated' if size < expected else 'too long'})")
    elif head != struct.pack(f">{1 + len(sizes)}I", magic, *sizes):
        problem = "it does not start with the IDX header of Fashion-MNIST"
    if problem:
        raise _broken(source or path, problem, folder)


def _broken(path, problem, folder):
    """One error that names the file, says what is wrong, and how to fix it."""
    fix = (f"delete {path} (or the whole folder {folder}) and run again"
           if Path(folder).resolve() != DEBIAN_DIR else
           "reinstall it: `sudo apt install --reinstall dataset-fashion-mnist`")
    return BrokenDataError(f"Fashion-MNIST file {path} is broken: {problem}. To fix it, {fix}; "
                           f"or use another source: {SOURCES_HELP}.")


def _unpack(src, dest):
    """Unpack the four .gz files of `src` into `dest`, checking each before it is kept.

    Each file is written as `name.part` and renamed only once it is complete and checked,
    so an interrupted unpack never leaves a file that looks complete.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        final, part = dest / name, dest / (name + ".part")
        if final.is_file():
            _check_idx_file(final, dest)
            continue
        try:
            with gzip.open(src / (name + ".gz"), "rb") as f_in, open(part, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
            _check_idx_file(part, src, source=src / (name + ".gz"))
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:   # a damaged .gz
            part.unlink(missing_ok=True)
            raise _broken(src / (name + ".gz"), f"it cannot be unpacked ({error})", src) from None
        except BaseException:                 # a bad file, a full disk, or Ctrl-C: no .part left
            part.unlink(missing_ok=True)
            raise
        part.replace(final)
    return dest


def _download(cache, timeout=10):
    """Let torchvision download into the cache; False (quickly) when offline."""
    from torchvision.datasets import FashionMNIST

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)   # offline, fail in seconds rather than hang
    try:
        FashionMNIST(str(cache), train=True, download=True)
        FashionMNIST(str(cache), train=False, download=True)
        return True
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(old_timeout)
