"""The teaching claims of notebooks 02 (an MLP from raw tensors), 03 (the same MLP with
nn.Sequential and torch.optim) and 07 (softmax and cross-entropy), checked with the helpers
over several seeds on small subsets."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import load_fashion_mnist, set_seed, train

SEEDS = [0, 1, 2]


# --- small local versions of the notebooks' from-scratch code --------------------------------

def softmax_naive(Z):
    E = torch.exp(Z)
    return E / E.sum(dim=1, keepdim=True)


def softmax(Z):
    Z = Z - Z.max(dim=1, keepdim=True).values
    E = torch.exp(Z)
    return E / E.sum(dim=1, keepdim=True)


def log_softmax(Z):
    m = Z.max(dim=1, keepdim=True).values
    return Z - m - torch.log(torch.exp(Z - m).sum(dim=1, keepdim=True))


def cross_entropy(Z, y):
    return -log_softmax(Z).gather(1, y.unsqueeze(1)).squeeze(1)


def relu(X):
    return torch.where(X > 0, X, 0.0)


def init_mlp(sizes, device):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = (torch.randn(n_in, n_out, device=device) * (2 / n_in) ** 0.5).requires_grad_()
        params += [W, torch.zeros(n_out, device=device, requires_grad=True)]
    return params


def mlp(X, params):
    H = X.reshape(X.shape[0], -1)
    for W, b in zip(params[0:-2:2], params[1:-2:2]):
        H = relu(H @ W + b)
    return H @ params[-2] + params[-1]


class SGD:
    """Stochastic gradient descent from scratch, with torch.optim.SGD's two methods."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad   # the loss is already a batch mean: no division here


class SGDDividedTwice(SGD):
    """The classic bug of notebook 02: dividing the batch-mean gradient by the batch size."""

    def __init__(self, params, lr, batch_size):
        super().__init__(params, lr)
        self.batch_size = batch_size

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad / self.batch_size


# --- 07: softmax and cross-entropy ----------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("offset", [100.0, 300.0, 1000.0])
def test_naive_softmax_overflows_where_the_stable_one_does_not(seed, offset):
    set_seed(seed)
    Z = torch.randn(64, 10) + offset                 # logits around 100 ... 1000
    assert torch.isnan(softmax_naive(Z)).all()       # exp overflows: inf / inf
    for logits in (Z, -Z):
        P = softmax(logits)
        assert torch.isfinite(P).all()
        torch.testing.assert_close(P, torch.softmax(logits, dim=1))
        torch.testing.assert_close(P.sum(dim=1), torch.ones(64))
        torch.testing.assert_close(log_softmax(logits), torch.log_softmax(logits, dim=1))


@pytest.mark.parametrize("seed", SEEDS)
def test_naive_softmax_underflows_for_very_negative_rows(seed):
    set_seed(seed)
    Z = torch.randn(64, 10) - 1000.0                 # every e^z rounds to 0: 0 / 0
    assert torch.isnan(softmax_naive(Z)).all()
    torch.testing.assert_close(softmax(Z), torch.softmax(Z, dim=1))


@pytest.mark.parametrize("seed", SEEDS)
def test_naive_softmax_is_fine_below_the_float32_limit(seed):
    set_seed(seed)
    Z = torch.randn(64, 10) + 80.0                   # e^83 * 10 is still below 3.4e38
    torch.testing.assert_close(softmax_naive(Z), softmax(Z))


def test_naive_overflow_starts_at_log_of_the_largest_float32():
    limit = math.log(torch.finfo(torch.float32).max)   # about 88.72
    assert torch.isfinite(softmax_naive(torch.tensor([[limit - 0.1, 0.0]]))).all()
    assert torch.isnan(softmax_naive(torch.tensor([[limit + 0.1, 0.0]]))).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_matches_pytorch_and_its_gradient_is_p_minus_y(seed):
    set_seed(seed)
    Z = (5 * torch.randn(128, 10)).requires_grad_(True)
    y = torch.randint(0, 10, (128,))
    torch.testing.assert_close(cross_entropy(Z, y), F.cross_entropy(Z, y, reduction="none"))
    (grad,) = torch.autograd.grad(cross_entropy(Z, y).sum(), Z)
    p_minus_y = torch.softmax(Z.detach(), dim=1) - F.one_hot(y, 10)
    torch.testing.assert_close(grad, p_minus_y)
    (grad_mean,) = torch.autograd.grad(nn.CrossEntropyLoss()(Z, y), Z)
    torch.testing.assert_close(grad_mean, p_minus_y / 128)


def test_softmax_before_cross_entropy_traps_the_loss_and_kills_the_gradient():
    z = torch.linspace(-10, 10, 201)
    logits = torch.zeros(201, 10)
    logits[:, 0] = z
    logits.requires_grad_(True)
    target = torch.zeros(201, dtype=torch.long)
    wrong = F.cross_entropy(torch.softmax(logits, dim=1), target, reduction="none")
    right = F.cross_entropy(logits, target, reduction="none")
    assert wrong.min() >= math.log(1 + 9 / math.e) - 1e-4
    assert wrong.max() <= math.log(math.e + 9) + 1e-4
    (g_wrong,) = torch.autograd.grad(wrong.sum(), logits)
    (g_right,) = torch.autograd.grad(right.sum(), logits)
    assert g_right[0, 0].abs() > 0.99 and g_wrong[0, 0].abs() < 1e-3   # confidently wrong


# --- 02: the MLP from raw tensors -----------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_mlp_equals_nn_sequential(seed):
    set_seed(seed)
    train_iter, test_iter = load_fashion_mnist(128, device="cpu")
    X, y = next(iter(train_iter))
    W1, b1, W2, b2 = params = init_mlp([784, 256, 10], "cpu")
    with torch.no_grad():                            # non-zero biases, so they are tested too
        b1.normal_()
        b2.normal_()
    torch_net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        torch_net[1].weight.copy_(W1.T)
        torch_net[1].bias.copy_(b1)
        torch_net[3].weight.copy_(W2.T)
        torch_net[3].bias.copy_(b2)
    torch.testing.assert_close(mlp(X, params), torch_net(X))
    loss = nn.CrossEntropyLoss()
    ours = torch.autograd.grad(loss(mlp(X, params), y), params)
    theirs = torch.autograd.grad(loss(torch_net(X), y), list(torch_net.parameters()))
    for g_ours, g_theirs in zip(ours, theirs):
        torch.testing.assert_close(g_ours, g_theirs.T if g_ours.ndim == 2 else g_theirs)


@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_sgd_step_equals_torch_optim_sgd(seed):
    set_seed(seed)
    train_iter, _ = load_fashion_mnist(128, device="cpu")
    X, y = next(iter(train_iter))
    params = init_mlp([784, 32, 10], "cpu")
    copies = [p.detach().clone().requires_grad_() for p in params]
    for weights, optimizer in [(params, SGD(params, lr=0.1)),
                               (copies, torch.optim.SGD(copies, lr=0.1))]:
        for _ in range(2):                           # two steps: zero_grad must clear the first
            optimizer.zero_grad()
            F.cross_entropy(mlp(X, weights), y).backward()
            optimizer.step()
        optimizer.zero_grad()
    for a, b in zip(params, copies):
        torch.testing.assert_close(a, b)
        assert a.grad is None and b.grad is None     # both zero_grad() set .grad to None


def test_torch_maximum_splits_the_gradient_at_zero_and_our_relu_does_not():
    x = torch.zeros(1, requires_grad=True)
    torch.maximum(x, torch.zeros_like(x)).sum().backward()
    assert x.grad.item() == 0.5
    x.grad = None
    relu(x).sum().backward()
    assert x.grad.item() == 0.0 == torch.autograd.grad(torch.relu(x).sum(), x)[0].item()


@pytest.mark.parametrize("seed", SEEDS)
def test_untrained_loss_is_a_little_above_ln_10(seed):
    train_iter, _ = load_fashion_mnist(256, device="cpu")
    set_seed(seed)
    params = init_mlp([784, 256, 10], "cpu")
    X, y = next(iter(train_iter))
    with torch.no_grad():
        assert 0 < cross_entropy(mlp(X, params), y).mean().item() - math.log(10) < 0.5


# --- the models on Fashion-MNIST -------------------------------------------------------------

def _train(sizes, seed, num_train=30_720, num_epochs=4, batch_size=256, lr=0.1,
           optimizer=SGD):
    train_iter, test_iter = load_fashion_mnist(batch_size, device="cpu", num_train=num_train)
    set_seed(seed)
    params = init_mlp(sizes, "cpu")
    set_seed(seed)                                   # same batch order for every model
    return train(lambda X: mlp(X, params), train_iter, test_iter, cross_entropy, num_epochs,
                 optimizer(params, lr), plot=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_dividing_by_the_batch_size_twice_leaves_the_loss_stuck(seed):
    """Notebook 02: one epoch of 40 steps; the bug barely moves the loss from its start."""
    train_iter, _ = load_fashion_mnist(256, device="cpu", num_train=10_240)
    set_seed(seed)
    params = init_mlp([784, 256, 10], "cpu")
    set_seed(seed)
    X, y = next(iter(train_iter))
    with torch.no_grad():
        start = cross_entropy(mlp(X, params), y).mean().item()
    right = _train([784, 256, 10], seed, num_train=10_240, num_epochs=1)
    stuck = _train([784, 256, 10], seed, num_train=10_240, num_epochs=1,
                   optimizer=lambda params, lr: SGDDividedTwice(params, lr, batch_size=256))
    assert abs(stuck.train_loss[-1] - start) < 0.15, (start, stuck.train_loss)
    assert stuck.test_acc[-1] < 0.2, stuck.test_acc        # still near chance, 0.1
    assert right.train_loss[-1] < stuck.train_loss[-1] - 0.5, (right.train_loss, stuck.train_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_learning_rate_1_learns_badly_and_2_or_more_blows_up(seed):
    """Notebook 02's playground hints, on all 60,000 images."""
    for lr in (2.0, 3.0):
        run = _train([784, 256, 10], seed, num_train=None, num_epochs=2, lr=lr)
        assert run.diverged and not run.test_acc     # stopped within the first epoch
    bad = _train([784, 256, 10], seed, num_train=None, num_epochs=3, lr=1.0)
    assert not bad.diverged and not bad.stalled
    assert 0.2 < max(bad.test_acc) < 0.75, bad.test_acc   # far below lr 0.1's 85 %


def test_only_the_first_doubling_of_a_narrow_layer_buys_a_point():
    """Notebook 02's width sweep (20,480 images, 5 epochs, mean of 3 seeds), from 16 to 128."""
    widths = [16, 32, 64, 128]
    mean_acc = torch.tensor([
        sum(_train([784, w, 10], s, num_train=20_480, num_epochs=5).test_acc[-1]
            for s in SEEDS) / len(SEEDS)
        for w in widths])
    gains = mean_acc.diff()
    assert gains[0] > 0.01, mean_acc
    assert (gains[1:] < 0.01).all(), mean_acc


def test_a_second_hidden_layer_fits_faster_and_tests_about_a_point_better():
    """Notebook 02: one hidden layer of 256 against two, 20,480 images, 5 epochs, 3 seeds."""
    runs = {depth: [_train([784] + [256] * depth + [10], s, num_train=20_480, num_epochs=5)
                    for s in SEEDS]
            for depth in (1, 2)}
    for one, two in zip(runs[1], runs[2]):
        assert two.train_loss[-1] < one.train_loss[-1], (one.train_loss, two.train_loss)
    gain = sum(two.test_acc[-1] - one.test_acc[-1] for one, two in zip(runs[1], runs[2])) / 3
    assert -0.01 < gain < 0.03, gain


def test_the_hidden_layer_beats_softmax_regression_in_loss():
    """Notebook 03: nn.Sequential with PyTorch's default initialization and torch.optim.SGD,
    10 epochs. The gap shows in the training loss on every seed; the test accuracy moves by
    two or three points from epoch to epoch, so it is not compared here. On 20,480 images
    (a third of the updates) the gap is smaller than the notebook's 0.05 on all 60,000."""
    train_iter, test_iter = load_fashion_mnist(256, device="cpu", num_train=20_480)
    models = {
        "mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                                     nn.Linear(256, 10)),
        "linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
    }
    for seed in SEEDS:
        histories = {}
        for name, make in models.items():
            set_seed(seed)
            net = make()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            histories[name] = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 10,
                                    optimizer, plot=False)
        mlp_run, linear_run = histories["mlp"], histories["linear"]
        assert mlp_run.train_loss[-1] < linear_run.train_loss[-1] - 0.03, (
            mlp_run.train_loss, linear_run.train_loss)
        assert mlp_run.test_loss[-1] < linear_run.test_loss[-1], (
            mlp_run.test_loss, linear_run.test_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_bigger_batch_at_the_same_epochs_ends_at_a_higher_loss(seed):
    small = _train([784, 10], seed, num_train=20_480, batch_size=256)
    big = _train([784, 10], seed, num_train=20_480, batch_size=1024)   # 4x fewer updates
    assert big.train_loss[-1] > small.train_loss[-1], (small.train_loss, big.train_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_against_updates_both_batch_sizes_follow_one_loss_curve(seed):
    """Notebook 07: plotted at each epoch's middle update, the epoch-mean losses of batch 256
    and batch 1024 lie on one curve, except batch 256's first epoch (a mean over a fast drop)."""
    losses, middles = {}, {}
    for batch_size, num_epochs in [(256, 5), (1024, 20)]:   # 400 updates each on 20,480 images
        train_iter, test_iter = load_fashion_mnist(batch_size, device="cpu", num_train=20_480)
        set_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        h = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), num_epochs,
                  torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
        losses[batch_size] = np.array(h.train_loss)
        middles[batch_size] = (np.arange(1, num_epochs + 1) - 0.5) * len(train_iter)
    gaps = losses[256] - np.interp(middles[256], middles[1024], losses[1024])
    assert gaps[0] > 0.05 and np.abs(gaps[1:]).max() < 0.03, gaps
