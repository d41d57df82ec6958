"""train / evaluate_accuracy / History / set_seed."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import History, evaluate, evaluate_accuracy, load_fashion_mnist, set_seed, train


def small_data(batch_size=256, num_train=2000):
    return load_fashion_mnist(batch_size, num_train=num_train, device="cpu")


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def run(lr=0.1, epochs=3, reduction="mean", seed=0, batch_size=256, net=None):
    set_seed(seed)
    train_iter, test_iter = small_data(batch_size)
    net = net or mlp()
    updater = torch.optim.SGD(net.parameters(), lr=lr)
    history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction=reduction),
                    epochs, updater, plot=False)
    return net, history


def test_set_seed_repeats_python_numpy_and_torch():
    set_seed(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    set_seed(4)
    assert torch.rand(1).item() != a[2]


def test_training_learns_and_records_one_entry_per_epoch():
    _, h = run(epochs=4)
    assert len(h.train_loss) == len(h.train_acc) == len(h.test_acc) == len(h.seconds) == 4
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.test_acc[-1] > 0.6                     # 10 classes: chance is 0.1
    assert all(s > 0 for s in h.seconds)
    assert not h.diverged and not h.stalled and h.message == ""
    assert "test acc" in h.summary()


def test_same_seed_same_history_and_other_seed_differs():
    _, a = run(seed=1, epochs=2)
    _, b = run(seed=1, epochs=2)
    _, c = run(seed=2, epochs=2)
    assert a.train_loss == b.train_loss and a.test_acc == b.test_acc
    assert a.train_loss != c.train_loss


def test_reduction_none_and_mean_train_the_same():
    _, a = run(reduction="none", seed=5, epochs=2)
    _, b = run(reduction="mean", seed=5, epochs=2)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5)


def test_huge_learning_rate_diverges_without_raising(capsys):
    _, h = run(lr=1e4, epochs=5)
    assert h.diverged
    assert "diverged at epoch 1" in h.message and "smaller learning rate" in h.message
    assert len(h.train_loss) == 0                  # the broken epoch is not recorded
    assert "diverged" in capsys.readouterr().out   # and one line said so


def test_nan_loss_counts_as_diverged():
    def loss_that_breaks(y_hat, y):
        return nn.functional.cross_entropy(y_hat, y) * float("nan")
    set_seed(0)
    train_iter, test_iter = small_data()
    net = mlp()
    h = train(net, train_iter, test_iter, loss_that_breaks, 3,
              torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
    assert h.diverged and "nan" in h.message


def test_a_dead_network_is_reported_as_not_learning():
    net = mlp()
    with torch.no_grad():                          # every ReLU dead: outputs are constant
        net[1].bias.fill_(-100.0)
    _, h = run(lr=0.1, epochs=2, net=net)
    assert h.stalled and not h.diverged
    assert "not learning" in h.message and "chance" in h.message
    assert h.test_acc[-1] == pytest.approx(0.1, abs=0.05)


def test_plain_function_net_and_function_updater():
    set_seed(0)
    train_iter, test_iter = small_data()
    W = torch.zeros(784, 10, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    seen_batch_sizes = []

    def net(X):
        return X.reshape(-1, 784) @ W + b

    def sgd(batch_size):
        seen_batch_sizes.append(batch_size)
        with torch.no_grad():
            for p in (W, b):
                p -= 0.1 * p.grad
                p.grad.zero_()

    h = train(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"), 2, sgd,
              plot=False)
    assert h.test_acc[-1] > 0.6
    assert seen_batch_sizes[:8] == [256] * 7 + [2000 - 7 * 256]   # last partial batch kept
    assert len(seen_batch_sizes) == 2 * 8


def test_test_loss_is_the_mean_loss_over_the_test_set_after_each_epoch():
    net, h = run(epochs=2)
    _, test_iter = small_data(batch_size=999)          # other batches: same mean
    net.eval()
    with torch.no_grad():
        expected = torch.cat([nn.functional.cross_entropy(net(X), y, reduction="none")
                              for X, y in test_iter]).mean().item()
    assert len(h.test_loss) == 2
    assert h.test_loss[-1] == pytest.approx(expected, rel=1e-5)
    assert h.test_loss[-1] != pytest.approx(h.train_loss[-1], rel=1e-3)


def test_scratch_optimizer_with_step_and_zero_grad_is_used_like_torch_optim():
    class SGD:
        def __init__(self, params, lr):
            self.params, self.lr, self.calls = list(params), lr, []

        def zero_grad(self):
            self.calls.append("zero_grad")
            for p in self.params:
                p.grad = None

        def step(self):
            self.calls.append("step")
            with torch.no_grad():
                for p in self.params:
                    p -= self.lr * p.grad

    set_seed(0)
    ours = mlp()
    theirs = mlp()
    theirs.load_state_dict(ours.state_dict())
    train_iter, test_iter = small_data()
    scratch = SGD(ours.parameters(), lr=0.1)
    set_seed(1)
    h_ours = train(ours, train_iter, test_iter, nn.CrossEntropyLoss(), 2, scratch, plot=False)
    set_seed(1)
    h_theirs = train(theirs, train_iter, test_iter, nn.CrossEntropyLoss(), 2,
                     torch.optim.SGD(theirs.parameters(), lr=0.1), plot=False)
    assert scratch.calls[:4] == ["zero_grad", "step", "zero_grad", "step"]
    assert len(scratch.calls) == 2 * 2 * len(train_iter)
    torch.testing.assert_close(h_ours.train_loss, h_theirs.train_loss)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q)


def test_evaluate_accuracy_counts_exactly():
    _, test_iter = load_fashion_mnist(1000, device="cpu")
    y_all = test_iter.y

    def oracle(X):                 # looks the answer up: right on every example
        return nn.functional.one_hot(oracle.labels.pop(0), 10).float()

    oracle.labels = [y for _, y in test_iter]
    assert evaluate_accuracy(oracle, test_iter) == 1.0

    def always_zero(X):
        out = torch.zeros(len(X), 10)
        out[:, 0] = 1
        return out

    assert evaluate_accuracy(always_zero, test_iter) == (y_all == 0).sum().item() / len(y_all)


def test_evaluate_accuracy_puts_modules_in_eval_mode():
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))
    _, test_iter = load_fashion_mnist(1000, device="cpu")
    first = evaluate_accuracy(net, test_iter)
    assert not net.training
    assert evaluate_accuracy(net, test_iter) == first      # no dropout noise


def test_plot_object_is_called_every_epoch():
    class Recorder:
        def __init__(self):
            self.epochs = []

        def update(self, history):
            self.epochs.append(len(history.test_acc))

    set_seed(0)
    train_iter, test_iter = small_data()
    net = mlp()
    recorder = Recorder()
    train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 3,
          torch.optim.SGD(net.parameters(), lr=0.1), plot=recorder)
    assert recorder.epochs == [1, 2, 3]


def test_history_summary_for_each_outcome():
    assert History().summary() == "no epoch finished"
    h = History(train_loss=[1.0], train_acc=[0.5], test_acc=[0.4], seconds=[2.0], num_epochs=1)
    assert "2.00 s/epoch" in h.summary() and "test acc 0.400" in h.summary()
    h.message = "diverged at epoch 1"
    assert h.summary() == "diverged at epoch 1"


def test_train_moves_a_module_to_the_data_device():
    net, _ = run(epochs=1)
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert math.isfinite(sum(p.sum().item() for p in net.parameters()))


class CountOps(TorchDispatchMode):
    """Counts every tensor operation PyTorch runs inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_epoch(num_train, use_train):
    train_iter, test_iter = load_fashion_mnist(100, num_train=num_train, device="cpu")
    set_seed(0)
    net = mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    with CountOps() as ops:
        if use_train:
            train(net, train_iter, test_iter, loss, 1, optimizer, plot=False)
        else:                                   # the bare loop: nothing but the training itself
            for X, y in train_iter:
                optimizer.zero_grad()
                loss(net(X), y).backward()
                optimizer.step()
    return ops.count


def test_train_adds_only_a_few_operations_per_batch_to_a_bare_loop():
    """Speed by design, counted rather than timed: per batch, `train` adds its running
    loss and accuracy (and on the CPU a divergence check) and nothing else."""
    bare = (ops_per_epoch(2000, False) - ops_per_epoch(1000, False)) / 10   # per batch
    ours = (ops_per_epoch(2000, True) - ops_per_epoch(1000, True)) / 10
    assert bare > 20
    assert ours - bare <= 6, f"train runs {ours - bare:.0f} extra operations per batch"


def test_the_test_pass_uses_big_batches():
    train_iter, test_iter = load_fashion_mnist(16, num_train=160, device="cpu")
    net = mlp()
    eval_batches = []
    net.register_forward_hook(lambda m, args, out: None if m.training else
                              eval_batches.append(len(args[0])))
    train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 1,
          torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
    assert eval_batches == [1000] * 10 and len(test_iter) == 625   # the iterator is unchanged


def test_evaluate_gives_the_loss_and_accuracy_in_evaluation_mode():
    train_iter, test_iter = small_data()
    set_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(784, 10))
    loss_value, acc = evaluate(net, test_iter, nn.CrossEntropyLoss())
    assert not net.training
    logits = net(test_iter.X)                                # eval mode: dropout off
    assert math.isclose(loss_value, nn.functional.cross_entropy(logits, test_iter.y).item(),
                        rel_tol=1e-5)
    assert acc == evaluate_accuracy(net, test_iter)
