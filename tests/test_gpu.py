"""The GPU path: data and model live on the GPU, `train` waits for it once per epoch, and
the numbers agree with the CPU.

Every test here needs CUDA; without it they are skipped and `pytest -ra` prints why.

    .venv/bin/pytest -m gpu -v -s tests/test_gpu.py

How syncs are counted: `torch.cuda.set_sync_debug_mode("warn")` makes PyTorch warn each
time the host waits for the GPU (`.item()`, `.tolist()`, `float(t)`, a blocking copy to
the CPU, ...). We count those warnings while `train` runs. A sanity test first checks
that the counter sees a known sync and stays silent for GPU-only work.
"""

import warnings

import pytest
import torch
from torch import nn

from helpers import default_device, load_fashion_mnist, set_seed, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (torch.cuda.is_available() is False here)"),
]

NUM_TRAIN = 5000      # a small subset: 20 batches of 256 per epoch
BATCH_SIZE = 256
SYNC_WARNING = "synchronizing CUDA operation"


@pytest.fixture(autouse=True)
def full_float32():
    """Plain float32 matmuls on the GPU (no TF32), so GPU and CPU compute the same thing."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class CountSyncs:
    """`with CountSyncs() as syncs: ...` then `syncs.count`: host-GPU syncs inside."""

    def __enter__(self):
        torch.cuda.synchronize()                      # nothing pending from before
        self._mode = torch.cuda.get_sync_debug_mode()
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")               # count repeats from the same line
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode(self._mode)
        self._catcher.__exit__(*exc)
        self.messages = [str(w.message) for w in self._caught]
        self.count = sum(SYNC_WARNING in m for m in self.messages)
        return False


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def scratch_mlp(device):
    """Notebook 02's shape: raw tensors and a plain function, parameters placed by hand."""
    W1 = (torch.randn(784, 256) * 0.01).to(device).requires_grad_()
    b1 = torch.zeros(256, device=device, requires_grad=True)
    W2 = (torch.randn(256, 10) * 0.01).to(device).requires_grad_()
    b2 = torch.zeros(10, device=device, requires_grad=True)
    params = [W1, b1, W2, b2]

    def net(X):
        return torch.relu(X.reshape(-1, 784) @ W1 + b1) @ W2 + b2

    def sgd(batch_size, lr=0.1):
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad          # train() already backpropagates the batch mean
                p.grad.zero_()

    return net, sgd, params


def run(device, *, lr=0.1, num_epochs=3, shuffle=True, seed=0, num_train=NUM_TRAIN):
    """Train the concise MLP on `device` from the same initial weights; return the History."""
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device=device, num_train=num_train)
    train_iter.shuffle = shuffle
    set_seed(seed)
    net = mlp()                                        # made on the CPU: same weights for all
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return train(net, train_iter, test_iter, nn.CrossEntropyLoss(), num_epochs, optimizer,
                 plot=False)


def test_default_device_is_the_gpu(monkeypatch):
    monkeypatch.delenv("HELPERS_DEVICE", raising=False)
    assert default_device().type == "cuda"


def test_batches_and_model_live_on_the_gpu(monkeypatch):
    monkeypatch.delenv("HELPERS_DEVICE", raising=False)
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, num_train=NUM_TRAIN)
    for data_iter in (train_iter, test_iter):
        assert data_iter.device.type == "cuda"
        X, y = next(iter(data_iter))
        assert X.is_cuda and y.is_cuda
        assert X.dtype == torch.float32 and y.dtype == torch.int64
        assert X.shape == (BATCH_SIZE, 1, 28, 28) and y.shape == (BATCH_SIZE,)

    set_seed(0)
    net = mlp()                                        # on the CPU until train() moves it
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 2, optimizer,
                    plot=False)
    assert all(p.is_cuda for p in net.parameters())
    assert net(X).is_cuda
    # the optimizer made before the move still trains the (moved) parameters
    assert history.test_acc[-1] > 0.5, history.summary()     # chance is 0.1


def test_the_sync_counter_sees_syncs_and_nothing_else():
    x = torch.ones(1000, device="cuda")
    with CountSyncs() as quiet:
        y = (x * 2).sum()
        perm = torch.randperm(NUM_TRAIN, device="cuda")
        _ = x[perm[:256] % 1000]
    assert quiet.count == 0, quiet.messages
    with CountSyncs() as loud:
        y.item()
    assert loud.count >= 1, loud.messages


@pytest.mark.parametrize("kind", ["nn.Module + torch.optim", "function + scratch updater"])
@pytest.mark.parametrize("num_epochs", [2, 4])
def test_train_syncs_at_most_once_per_epoch(kind, num_epochs):
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device="cuda", num_train=NUM_TRAIN)
    set_seed(0)
    if kind.startswith("nn.Module"):
        net = mlp().to("cuda")                 # placed beforehand: moving it is setup, not epochs
        updater = torch.optim.SGD(net.parameters(), lr=0.1)
    else:
        net, updater, _ = scratch_mlp("cuda")
    loss = nn.CrossEntropyLoss(reduction="none")
    train(net, train_iter, test_iter, loss, 1, updater, plot=False)   # warm-up (lazy init)
    with CountSyncs() as syncs:
        history = train(net, train_iter, test_iter, loss, num_epochs, updater, plot=False)
    print(f"\n{kind}: {syncs.count} sync(s) in {num_epochs} epochs")
    assert len(history.test_acc) == num_epochs and not history.diverged, history.summary()
    assert syncs.count <= num_epochs, (
        f"{syncs.count} syncs in {num_epochs} epochs:\n" + "\n".join(syncs.messages))


def test_scratch_parameters_stay_on_the_gpu_and_learn():
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device="cuda", num_train=NUM_TRAIN)
    set_seed(0)
    net, updater, params = scratch_mlp("cuda")
    history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), 3,
                    updater, plot=False)
    assert all(p.is_cuda and p.grad is not None for p in params)
    assert history.test_acc[-1] > 0.5, history.summary()     # chance is 0.1


def test_gpu_and_cpu_agree_batch_for_batch():
    """Same weights, same batches in the same order: only float rounding may differ."""
    cpu = run("cpu", shuffle=False)
    gpu = run("cuda", shuffle=False)
    print(f"\ncpu: {cpu.summary()}\ngpu: {gpu.summary()}")
    torch.testing.assert_close(gpu.train_loss, cpu.train_loss, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(gpu.train_acc, cpu.train_acc, rtol=0, atol=0.005)
    torch.testing.assert_close(gpu.test_acc, cpu.test_acc, rtol=0, atol=0.005)


def test_gpu_and_cpu_agree_with_their_own_shuffling():
    """The real iterators: each device draws its own batch order, so the runs agree only
    as two shuffling seeds on one device do. Measured on the CPU over 6 batch orders
    (20,000 images, 3 epochs): the epoch-mean train loss spreads by 1.6 %, the train
    accuracy by 0.005, and the end-of-epoch test accuracy by 0.05 (it jumps with the last
    batches). The tolerances below are about 3x the loss and accuracy spreads."""
    cpu = run("cpu", num_train=20_000)
    gpu = run("cuda", num_train=20_000)
    print(f"\ncpu: {cpu.summary()}\ngpu: {gpu.summary()}")
    assert gpu.train_loss[-1] == pytest.approx(cpu.train_loss[-1], rel=0.05)
    assert abs(gpu.train_acc[-1] - cpu.train_acc[-1]) < 0.02
    assert abs(gpu.test_acc[-1] - cpu.test_acc[-1]) < 0.08


def test_absurd_learning_rate_is_caught_on_the_gpu_as_on_the_cpu():
    cpu = run("cpu", lr=10.0, shuffle=False)
    gpu = run("cuda", lr=10.0, shuffle=False)
    print(f"\ncpu: {cpu.message}\ngpu: {gpu.message}")
    assert gpu.diverged or gpu.stalled, gpu.summary()
    assert (gpu.diverged, gpu.stalled) == (cpu.diverged, cpu.stalled)
