"""Fashion-MNIST loading: sources in order, tensors on the device, batches, bad input."""

import gzip
import shutil
import socket
import time

import pytest
import torch

from helpers import data
from helpers.data import FILES, TEXT_LABELS, load_fashion_mnist, text_labels


@pytest.fixture(scope="module")
def real_raw_folder():
    """The folder the loader resolves to on this machine (the real data set)."""
    return data._find_raw_folder()


@pytest.fixture
def no_default_sources(tmp_path, monkeypatch):
    """Hide every default source: no env var, an empty cache, no Debian folder, no network."""
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tmp_path


def gzip_copy(src_folder, dest):
    dest.mkdir(parents=True)
    for name in FILES.values():
        with open(f"{src_folder}/{name}", "rb") as f_in, gzip.open(dest / f"{name}.gz", "wb") as f:
            shutil.copyfileobj(f_in, f)


def test_shapes_dtypes_and_ranges():
    train_iter, test_iter = load_fashion_mnist(256)
    X, y = next(iter(train_iter))
    assert X.shape == (256, 1, 28, 28) and X.dtype == torch.float32
    assert y.shape == (256,) and y.dtype == torch.int64
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() > 0.5
    assert set(y.tolist()) <= set(range(10))
    assert len(train_iter.y) == 60_000 and len(test_iter.y) == 10_000


def test_every_class_has_its_share():
    train_iter, _ = load_fashion_mnist(256)
    assert torch.bincount(train_iter.y).tolist() == [6000] * 10


def test_len_counts_batches_and_keeps_the_last_partial_one():
    train_iter, test_iter = load_fashion_mnist(256)
    assert len(train_iter) == 235 and len(test_iter) == 40
    sizes = [len(y) for _, y in test_iter]
    assert len(sizes) == 40 and sizes[-1] == 10_000 - 39 * 256 and sum(sizes) == 10_000


def test_training_order_reshuffles_each_epoch_and_covers_every_example():
    train_iter, _ = load_fashion_mnist(4096, num_train=5000)
    torch.manual_seed(0)
    first = torch.cat([X.flatten(1)[:, 300] * 1000 + y for X, y in train_iter])
    second = torch.cat([X.flatten(1)[:, 300] * 1000 + y for X, y in train_iter])
    assert not torch.equal(first, second)
    assert torch.equal(first.sort().values, second.sort().values)
    assert len(first) == 5000


def test_test_order_is_fixed():
    _, test_iter = load_fashion_mnist(1000)
    first = torch.cat([y for _, y in test_iter])
    assert torch.equal(first, torch.cat([y for _, y in test_iter]))
    assert torch.equal(first, test_iter.y)


def test_second_call_reuses_the_tensors():
    a, _ = load_fashion_mnist(64)
    b, _ = load_fashion_mnist(512)
    assert a.X.data_ptr() == b.X.data_ptr()


def test_num_train_takes_the_first_images():
    full, _ = load_fashion_mnist(100)
    small, test_iter = load_fashion_mnist(100, num_train=1000)
    assert len(small.y) == 1000 and len(small) == 10 and len(test_iter.y) == 10_000
    assert torch.equal(small.y, full.y[:1000])


@pytest.mark.parametrize("bad", [0, -1, 60_001, 2.5, "256", None, True, 256.0])
def test_bad_batch_size_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="batch_size must be a whole number from 1 to 60000"):
        load_fashion_mnist(bad)


@pytest.mark.parametrize("bad", [0, 60_001, 1.5])
def test_bad_num_train_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="num_train"):
        load_fashion_mnist(10, num_train=bad)


def test_text_labels():
    assert text_labels(torch.tensor([0, 9, 6])) == ["t-shirt", "ankle boot", "shirt"]
    assert len(TEXT_LABELS) == 10


def test_explicit_root_with_gzipped_files_comes_first(real_raw_folder, no_default_sources):
    root = no_default_sources / "mine"
    gzip_copy(real_raw_folder, root)
    found = data._find_raw_folder(root)
    # unpacked into the cache, and the cache is found next time without the root
    assert found == str(data.CACHE_DIR / "FashionMNIST" / "raw")
    assert data._find_raw_folder() == found
    X, y, X_test, y_test = data._tensors_on("cpu", found)
    assert X.shape == (60_000, 1, 28, 28) and y_test.shape == (10_000,)


def test_environment_variable_with_plain_files(real_raw_folder, no_default_sources, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", real_raw_folder)
    assert data._find_raw_folder() == real_raw_folder
    assert not (data.CACHE_DIR / "FashionMNIST").exists()   # nothing copied


def test_torchvision_layout_is_accepted(real_raw_folder, no_default_sources):
    raw = no_default_sources / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES.values():
        shutil.copy(f"{real_raw_folder}/{name}", raw / name)
    assert data._find_raw_folder(no_default_sources / "tv") == str(raw)


def test_debian_folder_is_used_when_nothing_else(real_raw_folder, no_default_sources,
                                                 monkeypatch):
    debian = no_default_sources / "debian"
    gzip_copy(real_raw_folder, debian)
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    assert data._find_raw_folder() == str(data.CACHE_DIR / "FashionMNIST" / "raw")


def test_no_source_fails_fast_with_the_three_fixes(no_default_sources):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        data._find_raw_folder(no_default_sources / "missing")
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "apt install dataset-fashion-mnist" in message
    assert "FASHION_MNIST_DIR" in message
    assert "internet" in message and "missing" in message


def test_data_lives_on_the_requested_device():
    train_iter, test_iter = load_fashion_mnist(128, device="cpu")
    assert train_iter.device.type == "cpu" and test_iter.X.device.type == "cpu"
