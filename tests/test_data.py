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
    """Hide every default source: no env var, an empty project cache in a checkout of our
    own, an empty per-user cache, no Debian folder, no network."""
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    monkeypatch.setattr(data, "PROJECT_DIR", project)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tmp_path


def cache_raw():
    return data.cache_dir() / "FashionMNIST" / "raw"


@pytest.fixture(scope="module")
def gzipped(real_raw_folder, tmp_path_factory):
    """The four files gzipped once (fast compression), to be copied where a test needs them."""
    dest = tmp_path_factory.mktemp("gzipped")
    for name in FILES.values():
        with (open(f"{real_raw_folder}/{name}", "rb") as f_in,
              gzip.open(dest / f"{name}.gz", "wb", compresslevel=1) as f):
            shutil.copyfileobj(f_in, f)
    return dest


def gzip_copy(gzipped, dest):
    shutil.copytree(gzipped, dest)


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


def test_explicit_root_with_gzipped_files_comes_first(gzipped, real_raw_folder, no_default_sources):
    root = no_default_sources / "mine"
    gzip_copy(gzipped, root)
    found = data._find_raw_folder(root)
    # unpacked into the project's cache, and the cache is found next time without the root
    assert found == str(cache_raw()) and data.cache_dir() == data.PROJECT_DIR / "data"
    assert data._find_raw_folder() == found
    X, y, X_test, y_test = data._tensors_on("cpu", found)
    assert X.shape == (60_000, 1, 28, 28) and y_test.shape == (10_000,)


def test_environment_variable_with_plain_files(real_raw_folder, no_default_sources, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", real_raw_folder)
    assert data._find_raw_folder() == real_raw_folder
    assert not (data.cache_dir() / "FashionMNIST").exists()   # nothing copied


def test_torchvision_layout_is_accepted(real_raw_folder, no_default_sources):
    raw = no_default_sources / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES.values():
        shutil.copy(f"{real_raw_folder}/{name}", raw / name)
    assert data._find_raw_folder(no_default_sources / "tv") == str(raw)


def test_debian_folder_is_used_when_nothing_else(gzipped, real_raw_folder, no_default_sources,
                                                 monkeypatch):
    debian = no_default_sources / "debian"
    gzip_copy(gzipped, debian)
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    assert data._find_raw_folder() == str(cache_raw())


def test_no_source_fails_fast_with_the_three_fixes(no_default_sources):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        data._find_raw_folder()
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "apt install dataset-fashion-mnist" in message
    assert "FASHION_MNIST_DIR" in message
    assert "internet" in message and str(data.cache_dir()) in message


def test_an_explicit_root_without_the_files_is_an_error_not_a_detour(real_raw_folder,
                                                                     no_default_sources,
                                                                     monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", real_raw_folder)     # a good source exists
    with pytest.raises(FileNotFoundError, match="root= .*missing has no Fashion-MNIST files"):
        data._find_raw_folder(no_default_sources / "missing")


# ------------------------------------------------------------------ broken files

def broken_copy(real_raw_folder, dest, name, content):
    """The four real files in `dest`, with `name` replaced by `content` (bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    for other in FILES.values():
        shutil.copy(f"{real_raw_folder}/{other}", dest / other)
    (dest / name).write_bytes(content)
    return dest


def test_a_truncated_file_names_itself_its_size_and_the_fix(real_raw_folder,
                                                            no_default_sources):
    name = FILES["train_images"]
    head = open(f"{real_raw_folder}/{name}", "rb").read(99_984)
    root = broken_copy(real_raw_folder, no_default_sources / "mine", name, head)
    with pytest.raises(data.BrokenDataError) as info:
        load_fashion_mnist(256, root=root)
    message = str(info.value)
    assert str(root / name) in message
    assert "99,984 bytes, but should be 47,040,016 (truncated)" in message
    assert "delete" in message and "run again" in message
    assert "\n" not in message


def test_a_file_of_the_right_size_but_not_idx_is_named_too(real_raw_folder, no_default_sources):
    name = FILES["test_labels"]
    root = broken_copy(real_raw_folder, no_default_sources / "mine", name, b"\0" * 10_008)
    with pytest.raises(data.BrokenDataError, match=r"t10k-labels-idx1-ubyte is broken: .*IDX"):
        data._find_raw_folder(root)


def test_broken_files_in_an_explicit_root_never_fall_through(gzipped, real_raw_folder,
                                                             no_default_sources, monkeypatch):
    debian = no_default_sources / "debian"
    gzip_copy(gzipped, debian)                     # a good source exists after it
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    root = broken_copy(real_raw_folder, no_default_sources / "mine", FILES["train_labels"],
                       b"garbage")
    with pytest.raises(data.BrokenDataError, match="train-labels-idx1-ubyte"):
        data._find_raw_folder(root)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(root))      # the variable is explicit too
    with pytest.raises(data.BrokenDataError, match="train-labels-idx1-ubyte"):
        data._find_raw_folder()


def test_a_truncated_gzip_is_named_and_leaves_nothing_that_looks_complete(gzipped, real_raw_folder,
                                                                          no_default_sources):
    root = no_default_sources / "gz"
    gzip_copy(gzipped, root)
    gz = root / (FILES["train_images"] + ".gz")
    gz.write_bytes(gz.read_bytes()[:100_000])              # an interrupted download
    with pytest.raises(data.BrokenDataError) as info:
        data._find_raw_folder(root)
    assert str(gz) in str(info.value) and "cannot be unpacked" in str(info.value)
    left = sorted(p.name for p in cache_raw().iterdir())
    assert FILES["train_images"] not in left and not any(n.endswith(".part") for n in left)


def test_an_interrupted_unpack_is_never_taken_for_a_complete_cache(gzipped, real_raw_folder,
                                                                   no_default_sources,
                                                                   monkeypatch):
    root = no_default_sources / "gz"
    gzip_copy(gzipped, root)
    copies = []

    def interrupted(f_in, f_out, *args):
        copies.append(1)
        if len(copies) == 3:                               # Ctrl-C during the third file
            f_out.write(f_in.read(1000))
            raise KeyboardInterrupt
        return original(f_in, f_out, *args)

    original = shutil.copyfileobj
    monkeypatch.setattr(shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data._find_raw_folder(root)
    assert not data._has_files(cache_raw(), "")            # two files only: not a cache
    assert not list(cache_raw().glob("*.part"))
    monkeypatch.setattr(shutil, "copyfileobj", original)
    assert data._find_raw_folder(root) == str(cache_raw())  # the next run completes it


def test_a_broken_file_in_the_cache_says_to_delete_the_cache(real_raw_folder,
                                                             no_default_sources):
    broken_copy(real_raw_folder, cache_raw(), FILES["test_images"], b"\0" * 1000)
    with pytest.raises(data.BrokenDataError) as info:
        data._find_raw_folder()
    assert str(cache_raw() / FILES["test_images"]) in str(info.value)
    assert f"or the whole folder {cache_raw()}" in str(info.value)


# ------------------------------------------------------------------ where the cache is

def test_the_cache_is_the_project_data_folder_in_a_writable_checkout(no_default_sources):
    assert data.cache_dir() == data.PROJECT_DIR / "data"


def test_an_unwritable_project_folder_uses_the_per_user_cache(gzipped, real_raw_folder,
                                                              no_default_sources,
                                                              monkeypatch):
    # `data/` cannot be made, even by root, when the project's "folder" is a file.
    blocker = no_default_sources / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(data, "PROJECT_DIR", blocker / "project")
    assert data.cache_dir() == no_default_sources / "xdg" / "nn-fundamentals"
    root = no_default_sources / "gz"
    gzip_copy(gzipped, root)
    found = data._find_raw_folder(root)
    assert found == str(no_default_sources / "xdg" / "nn-fundamentals" / "FashionMNIST" / "raw")


def test_without_xdg_cache_home_the_cache_is_under_home(no_default_sources, monkeypatch):
    blocker = no_default_sources / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(data, "PROJECT_DIR", blocker / "project")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(no_default_sources / "home"))
    assert data.cache_dir() == no_default_sources / "home" / ".cache" / "nn-fundamentals"


def test_an_installed_package_never_writes_into_the_python_environment(no_default_sources,
                                                                       monkeypatch):
    site = no_default_sources / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "pyproject.toml").write_text("")               # even if one lay there
    monkeypatch.setattr(data, "PROJECT_DIR", site)
    assert data.cache_dir() == no_default_sources / "xdg" / "nn-fundamentals"
    assert not (site / "data").exists()


def test_data_lives_on_the_requested_device():
    train_iter, test_iter = load_fashion_mnist(128, device="cpu")
    assert train_iter.device.type == "cpu" and test_iter.X.device.type == "cpu"
