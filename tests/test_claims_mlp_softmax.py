"""The teaching claims of notebooks 02 (an MLP from raw tensors) and 07 (softmax and
cross-entropy), checked with the helpers over several seeds on small subsets."""

import math

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


def sgd(params, lr):
    def updater(batch_size):   # the loss is already a batch mean: no division here
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
    return updater


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
    F.cross_entropy(mlp(X, params), y).backward()
    sgd(params, 0.1)(len(y))
    optimizer = torch.optim.SGD(copies, lr=0.1)
    F.cross_entropy(mlp(X, copies), y).backward()
    optimizer.step()
    for a, b in zip(params, copies):
        torch.testing.assert_close(a, b)
        assert (a.grad == 0).all()


# --- the two models on Fashion-MNIST ---------------------------------------------------------

def _train(sizes, seed, num_train=30_720, num_epochs=4, batch_size=256, lr=0.1):
    train_iter, test_iter = load_fashion_mnist(batch_size, device="cpu", num_train=num_train)
    set_seed(seed)
    params = init_mlp(sizes, "cpu")
    set_seed(seed)                                   # same batch order for every model
    return train(lambda X: mlp(X, params), train_iter, test_iter, cross_entropy, num_epochs,
                 sgd(params, lr), plot=False)


def test_softmax_regression_stays_below_the_mlp():
    """Same data, budget and seeds. On a short run the MLP's test accuracy still moves by a
    point or two from epoch to epoch, so we compare each seed's best epoch, and the mean of
    the final epochs over the seeds."""
    final_linear, final_hidden = [], []
    for seed in SEEDS:
        linear = _train([784, 10], seed)             # softmax regression: no hidden layer
        hidden = _train([784, 256, 10], seed)        # the MLP of notebook 02
        assert not linear.diverged and not hidden.diverged
        assert max(linear.test_acc) < max(hidden.test_acc), (linear.test_acc, hidden.test_acc)
        final_linear.append(linear.test_acc[-1])
        final_hidden.append(hidden.test_acc[-1])
    assert sum(final_linear) < sum(final_hidden), (final_linear, final_hidden)


@pytest.mark.parametrize("seed", SEEDS)
def test_bigger_batch_at_the_same_epochs_ends_at_a_higher_loss(seed):
    small = _train([784, 10], seed, num_train=20_480, batch_size=256)
    big = _train([784, 10], seed, num_train=20_480, batch_size=1024)   # 4x fewer updates
    assert big.train_loss[-1] > small.train_loss[-1], (small.train_loss, big.train_loss)
