"""The teaching claims of notebooks/02_mlp_scratch.ipynb, checked with the helpers.

The notebook's from-scratch pieces are repeated here (a few lines each), so the tests do not
depend on executing it. Every claim is checked for seeds 0, 1 and 2. Claims about one batch
use the first 256 training images; the training claims use the notebook's data: all 60,000
images for the epoch by hand (run by `train`: the equality test shows, on a subset, that
they are the same epoch), 5,000 for dividing twice, 10,000 for the playground's lr = 1.
Where the notebook's claim is about the training loss only, the test set is cut to 1,000
images (in a fixed order, so the training runs are the notebook's own).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from helpers import evaluate_accuracy, load_fashion_mnist, set_seed, train
from helpers.data import TensorBatches

SEEDS = [0, 1, 2]
BATCH_SIZE, LR = 256, 0.2
loss = nn.CrossEntropyLoss(reduction="none")


# --- the notebook's from-scratch pieces ------------------------------------------------------

def init_params(num_hiddens=256, std=0.01):
    W1 = (torch.randn(784, num_hiddens) * std).requires_grad_()
    b1 = torch.zeros(num_hiddens, requires_grad=True)
    W2 = (torch.randn(num_hiddens, 10) * std).requires_grad_()
    b2 = torch.zeros(10, requires_grad=True)
    return [W1, b1, W2, b2]


def relu(Z):
    return torch.where(Z > 0, Z, 0.0)


def mlp(X, params):
    W1, b1, W2, b2 = params
    return relu(X.reshape(len(X), -1) @ W1 + b1) @ W2 + b2


def forward_backward(X, y, params):
    W1, b1, W2, b2 = params
    X = X.reshape(len(X), -1)
    Z1 = X @ W1 + b1
    H = relu(Z1)
    logits = H @ W2 + b2
    dO = (torch.softmax(logits, dim=1) - F.one_hot(y, 10)) / len(X)
    dZ1 = (dO @ W2.T) * (Z1 > 0)
    return loss(logits, y).mean(), [X.T @ dZ1, dZ1.sum(dim=0), H.T @ dO, dO.sum(dim=0)]


class SGD:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad


class SGDDividedTwice(SGD):
    def __init__(self, params, lr, batch_size):
        super().__init__(params, lr)
        self.batch_size = batch_size

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad / self.batch_size


def first_batch():
    train_iter, _ = load_fashion_mnist(BATCH_SIZE, device="cpu")
    return train_iter.X[:BATCH_SIZE], train_iter.y[:BATCH_SIZE]


def small_test_set(n=1_000):
    _, test_iter = load_fashion_mnist(BATCH_SIZE, device="cpu")
    return TensorBatches(test_iter.X[:n], test_iter.y[:n], BATCH_SIZE, shuffle=False)


def epoch_by_hand(params, train_iter, lr=LR):
    """One epoch with the hand-written gradients; the mean training loss."""
    total = 0.0
    with torch.no_grad():
        for X, y in train_iter:
            L, grads = forward_backward(X, y, params)
            for p, g in zip(params, grads):
                p -= lr * g
            total += L.item() * len(y)
    return total / len(train_iter.y)


def dead_units(params, X):
    with torch.no_grad():
        Z1 = X.reshape(len(X), -1) @ params[0] + params[1]
    return (Z1 <= 0).all(dim=0).sum().item()


def autograd_and_ours(seed):
    """(params with autograd's .grad, the logits with theirs, our four gradients)."""
    X, y = first_batch()
    set_seed(seed)
    params = init_params()
    logits = mlp(X, params)
    logits.retain_grad()
    loss(logits, y).mean().backward()
    with torch.no_grad():
        _, grads = forward_backward(X, y, params)
    return X, y, params, logits, grads


# --- section 1: the model --------------------------------------------------------------------

def test_parameters_counted_by_hand():
    params = init_params()
    assert 784 * 256 + 256 + 256 * 10 + 10 == sum(p.numel() for p in params) == 203_530
    assert round(params[0].numel() / 203_530, 3) == 0.986


@pytest.mark.parametrize("seed", SEEDS)
def test_first_loss_is_ln_10(seed):
    X, y = first_batch()
    set_seed(seed)
    params = init_params()
    assert abs(loss(mlp(X, params), y).mean().item() - math.log(10)) < 0.01


# --- section 2: the backward pass by hand ----------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_hand_written_gradients_match_autograd_to_six_digits(seed):
    X, y, params, logits, grads = autograd_and_ours(seed)
    P = torch.softmax(logits.detach(), dim=1)
    assert_close(logits.grad, (P - F.one_hot(y, 10)) / len(y))        # dO = (P - Y) / B
    for p, g in zip(params, grads):
        assert g.shape == p.shape
        assert_close(g, p.grad)
        assert (g - p.grad).abs().max() < 1e-6 * p.grad.abs().max()   # six digits or better


@pytest.mark.parametrize("seed", SEEDS)
def test_the_check_cell_can_be_run_twice(seed):
    """Without `p.grad = None` first, a second backward() doubles .grad and the check fails."""
    X, y, params, _, grads = autograd_and_ours(seed)
    for p in params:
        p.grad = None
    loss(mlp(X, params), y).mean().backward()
    for p, g in zip(params, grads):
        assert_close(g, p.grad)
    loss(mlp(X, params), y).mean().backward()                        # no reset: doubled
    assert_close(2 * grads[0], params[0].grad)
    with pytest.raises(AssertionError):
        assert_close(grads[0], params[0].grad)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_forgotten_relu_mask_is_caught(seed):
    X, _, params, logits, _ = autograd_and_ours(seed)
    with torch.no_grad():
        dW1_no_mask = X.reshape(len(X), -1).T @ (logits.grad @ params[2].T)
    error = (dW1_no_mask - params[0].grad).abs().max() / params[0].grad.abs().max()
    assert error > 0.5
    with pytest.raises(AssertionError):
        assert_close(dW1_no_mask, params[0].grad)


# --- sections 3 and 4: an epoch by hand, and the same epoch with train -------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_an_epoch_by_hand_is_the_epoch_train_does_with_autograd(seed):
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device="cpu", num_train=2_000)
    set_seed(seed)
    params = init_params()
    by_hand_loss = epoch_by_hand(params, train_iter)
    by_hand_acc = evaluate_accuracy(lambda X: mlp(X, params), test_iter)
    set_seed(seed)
    params = init_params()
    history = train(lambda X: mlp(X, params), train_iter, test_iter, loss, 1,
                    SGD(params, LR), plot=False)
    assert abs(history.train_loss[0] - by_hand_loss) < 1e-3
    assert abs(history.test_acc[0] - by_hand_acc) < 0.005


@pytest.mark.parametrize("seed", SEEDS)
def test_one_epoch_by_hand_reaches_75_to_80_percent(seed):
    """Section 3's epoch on all 60,000 images, run by `train` (the same epoch, as above)."""
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device="cpu")
    set_seed(seed)
    params = init_params()
    history = train(lambda X: mlp(X, params), train_iter, test_iter, loss, 1,
                    SGD(params, LR), plot=False)
    assert history.train_loss[0] < 0.9 and 0.74 < history.test_acc[0] < 0.82


# --- section 4: the SGD class and dividing twice ---------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_sgd_step_equals_torch_optim_sgd(seed):
    X, y = first_batch()
    makers = [lambda ps: SGD(ps, LR), lambda ps: torch.optim.SGD(ps, lr=LR),
              lambda ps: SGDDividedTwice(ps, LR * BATCH_SIZE, BATCH_SIZE),     # exercise 1
              lambda ps: SGDDividedTwice(ps, LR * BATCH_SIZE, 64)]             # its fragility
    after = []
    for make in makers:
        set_seed(seed)
        params = init_params()
        optimizer = make(params)
        optimizer.zero_grad()
        loss(mlp(X, params), y).mean().backward()
        optimizer.step()
        after.append(params)
    set_seed(seed)
    for start, ours, theirs, repaired, _ in zip(init_params(), *after):
        assert not torch.equal(ours, start)
        assert_close(ours, theirs)
        assert_close(repaired, ours)
    assert not torch.allclose(after[3][2], after[0][2])


def test_dividing_by_the_batch_size_twice_leaves_the_loss_at_ln_10():
    train_iter, _ = load_fashion_mnist(BATCH_SIZE, device="cpu", num_train=5_000)
    stalled = []
    for seed in SEEDS:
        runs = {}
        for name in ("SGD", "SGDDividedTwice"):
            set_seed(seed)
            params = init_params()
            updater = (SGD(params, LR) if name == "SGD"
                       else SGDDividedTwice(params, LR, BATCH_SIZE))
            runs[name] = train(lambda X, ps=params: mlp(X, ps), train_iter, small_test_set(),
                               loss, 3, updater, plot=False)
        assert min(runs["SGDDividedTwice"].train_loss) > 2.29
        assert runs["SGD"].train_loss[-1] < 1.1
        stalled.append(runs["SGDDividedTwice"].stalled)
    assert any(stalled)                  # "train prints that some of these runs are not learning"


# --- section 5: the playground's default, lr = 1 ---------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_learning_rate_1_learns_little_and_kills_most_hidden_units(seed):
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, device="cpu", num_train=10_000)
    set_seed(seed)
    params = init_params()
    assert dead_units(params, test_iter.X) == 0
    history = train(lambda X: mlp(X, params), train_iter, test_iter, loss, 3,
                    SGD(params, 1.0), plot=False)
    assert not history.diverged
    assert min(history.train_loss) > 1.7 and max(history.test_acc) < 0.35
    assert dead_units(params, test_iter.X) > 2 / 3 * 256


# --- exercises 2, 3 and 4 --------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_and_two_hidden_layer_gradients_by_hand_match_autograd(seed):
    X, y = first_batch()
    Xf = X.reshape(len(X), -1)
    set_seed(seed)
    W1, b1, W2, b2 = params = init_params()                                # exercise 2
    H = torch.sigmoid(Xf @ W1 + b1)
    logits = H @ W2 + b2
    loss(logits, y).mean().backward()
    with torch.no_grad():
        dO = (torch.softmax(logits, dim=1) - F.one_hot(y, 10)) / len(y)
        dZ1 = (dO @ W2.T) * H * (1 - H)
        grads = [Xf.T @ dZ1, dZ1.sum(dim=0), H.T @ dO, dO.sum(dim=0)]
    for p, g in zip(params, grads):
        assert_close(g, p.grad, rtol=1e-4, atol=1e-4 * p.grad.abs().max().item())
    set_seed(seed)                                                        # exercise 4
    ps = []
    for n_in, n_out in [(784, 256), (256, 64), (64, 10)]:
        ps += [(torch.randn(n_in, n_out) * 0.01).requires_grad_(),
               torch.zeros(n_out, requires_grad=True)]
    assert sum(p.numel() for p in ps) == 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10
    W1, b1, W2, b2, W3, b3 = ps
    Z1 = Xf @ W1 + b1
    Z2 = relu(Z1) @ W2 + b2
    logits = relu(Z2) @ W3 + b3
    loss(logits, y).mean().backward()
    with torch.no_grad():
        dO = (torch.softmax(logits, dim=1) - F.one_hot(y, 10)) / len(y)
        dZ2 = (dO @ W3.T) * (Z2 > 0)
        dZ1 = (dZ2 @ W2.T) * (Z1 > 0)
        grads = [Xf.T @ dZ1, dZ1.sum(dim=0), relu(Z1).T @ dZ2, dZ2.sum(dim=0),
                 relu(Z2).T @ dO, dO.sum(dim=0)]
    for p, g in zip(ps, grads):
        assert_close(g, p.grad, rtol=1e-4, atol=1e-4 * p.grad.abs().max().item())


@pytest.mark.parametrize("seed", SEEDS)
def test_finite_differences_agree_in_float64_and_not_in_float32(seed):
    X, y = first_batch()

    def numeric_vs_ours(dtype, eps=1e-6):
        set_seed(seed)
        ps = [p.detach().to(dtype) for p in init_params()]
        Xd = X.to(dtype)
        with torch.no_grad():
            _, (_, _, dW2, _) = forward_backward(Xd, y, ps)
            i, j = divmod(dW2.abs().argmax().item(), 10)
            ps[2][i, j] += eps
            up = loss(mlp(Xd, ps), y).mean()
            ps[2][i, j] -= 2 * eps
            down = loss(mlp(Xd, ps), y).mean()
        return ((up - down) / (2 * eps)).item(), dW2[i, j].item()

    numeric, ours = numeric_vs_ours(torch.float64)
    assert abs(numeric - ours) < 1e-6 * abs(ours)
    numeric, ours = numeric_vs_ours(torch.float32)
    assert abs(numeric - ours) > 0.1 * abs(ours)
    near = torch.tensor(2.3)
    assert (near.nextafter(torch.tensor(3.0)) - near).item() == 2 ** -22   # float32's spacing
