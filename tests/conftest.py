"""Fixtures shared by several test files."""

import pytest

from helpers import load_fashion_mnist


@pytest.fixture(scope="module")
def data():
    """The deep-network claims' data (notebooks 07 and 08): 5,000 training images in batches
    of 64, 2,000 test images as one batch, and the first 256 training images with their
    labels, the fixed batch the health checks look at."""
    train_iter, test_iter = load_fashion_mnist(64, num_train=5000, device="cpu")
    test_small = [(test_iter.X[:2000], test_iter.y[:2000])]
    return train_iter, test_small, train_iter.X[:256], train_iter.y[:256]
