"""The claims of notebooks 04 (overfitting, weight decay) and 05 (dropout), over three seeds.

The regression problems are rebuilt here exactly as the notebooks build them (seed 0 is the
notebooks' own data); the Fashion-MNIST runs use the helpers on the same 1,000-image subset.
"""

import copy
import math

import pytest
import torch
from torch import nn

from helpers import evaluate_accuracy, load_fashion_mnist, set_seed, train

SEEDS = (0, 1, 2)


# ---------------------------------------------------------------- polynomial regression (04)

TRUE_B, TRUE_W = 5.0, torch.tensor([1.2, -3.4, 5.6], dtype=torch.float64)


def poly_features(x, degree):
    i = torch.arange(1, degree + 1, dtype=x.dtype)
    factorials = torch.tensor([math.factorial(k) for k in range(1, degree + 1)], dtype=x.dtype)
    return x[:, None] ** i / factorials


def make_poly_data(seed):
    """100 training and 100 test points of y = cubic + N(0, 0.1^2) noise, as in notebook 04."""
    g = torch.Generator().manual_seed(seed)

    def draw(n):
        x = torch.randn(n, generator=g, dtype=torch.float64)
        y = TRUE_B + poly_features(x, 3) @ TRUE_W
        return x, y + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)

    x_pool, y_pool = draw(1000)
    x_test, y_test = draw(100)
    return x_pool[:100], y_pool[:100], x_test, y_test


def squared_loss(y_hat, y):
    return ((y_hat - y) ** 2).mean() / 2


def fit(X, y, *, lr, num_steps, lam=0.0, init=None):
    """Full-batch gradient descent on squared_loss + lam/2 ||w||^2 (the notebooks' `fit`)."""
    w = torch.zeros(X.shape[1], dtype=X.dtype) if init is None else init[0].clone()
    b = torch.zeros((), dtype=X.dtype) if init is None else init[1].clone()
    for _ in range(num_steps):
        r = X @ w + b - y
        w -= lr * (X.T @ r / len(y) + lam * w)
        b -= lr * r.mean()
    return w, b


def solve_exact(X, y):
    A = torch.cat([torch.ones(len(X), 1, dtype=X.dtype), X], dim=1)
    solution = torch.linalg.lstsq(A, y[:, None], driver="gelsd").solution[:, 0]
    return solution[1:], solution[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_degree_20_has_higher_test_loss_than_degree_3(seed):
    x_train, y_train, x_test, y_test = make_poly_data(seed)
    test_loss, train_loss = {}, {}
    for degree in (3, 20):
        X, X_test = poly_features(x_train, degree), poly_features(x_test, degree)
        w, b = fit(X, y_train, lr=0.2, num_steps=4000)              # trained as in the notebook
        test_loss["gd", degree] = squared_loss(X_test @ w + b, y_test).item()
        w, b = solve_exact(X, y_train)                               # trained to the end
        test_loss["exact", degree] = squared_loss(X_test @ w + b, y_test).item()
        train_loss[degree] = squared_loss(X @ w + b, y_train).item()
    assert test_loss["gd", 20] > test_loss["gd", 3]
    assert test_loss["exact", 20] > test_loss["exact", 3]
    assert train_loss[20] < train_loss[3]                           # while fitting better


# ---------------------------------------------------- 200-feature linear regression (04)

def make_high_dim_data(seed):
    """20 training and 100 test examples, 200 features, and nn.Linear's initial weights."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(120, 200, generator=g)
    y = 0.05 + 0.01 * X.sum(dim=1) + 0.01 * torch.randn(120, generator=g)
    torch.manual_seed(seed)
    init_net = nn.Linear(200, 1)
    return X[:20], y[:20], X[20:], y[20:], init_net


def initial(init_net):
    return init_net.weight.detach()[0].clone(), init_net.bias.detach()[0].clone()


@pytest.mark.parametrize("seed", SEEDS)
def test_weight_decay_shrinks_weights_and_lowers_test_loss(seed):
    X_tr, y_tr, X_te, y_te, init_net = make_high_dim_data(seed)
    norm, test_loss = {}, {}
    for lam in (0.0, 0.1, 1.0, 10.0):
        w, b = fit(X_tr, y_tr, lr=0.03, num_steps=1000, lam=lam, init=initial(init_net))
        norm[lam] = w.norm().item()
        test_loss[lam] = squared_loss(X_te @ w + b, y_te).item()
    assert norm[0.0] > norm[0.1] > norm[1.0] > norm[10.0]
    assert max(test_loss[lam] for lam in (0.1, 1.0, 10.0)) < test_loss[0.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_and_concise_weight_decay_agree(seed):
    X_tr, y_tr, _, _, init_net = make_high_dim_data(seed)
    for lam in (0.1, 3.0):
        w, b = fit(X_tr, y_tr, lr=0.03, num_steps=1000, lam=lam, init=initial(init_net))
        net = copy.deepcopy(init_net)
        optimizer = torch.optim.SGD([{"params": [net.weight], "weight_decay": lam},
                                     {"params": [net.bias]}], lr=0.03)
        for _ in range(1000):
            loss = squared_loss(net(X_tr)[:, 0], y_tr)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.testing.assert_close(net.weight.detach()[0], w)
        torch.testing.assert_close(net.bias.detach()[0], b)


# ------------------------------------------------------------------------------ dropout (05)

def dropout_layer(X, p):
    """The from-scratch dropout of notebook 05."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be between 0 and 1, got {p}")
    if p == 1:
        return torch.zeros_like(X)
    mask = (torch.rand_like(X) >= p).to(X.dtype)
    return mask * X / (1 - p)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_preserves_the_expectation(seed, p):
    torch.manual_seed(seed)
    x = torch.linspace(-2, 2, 9)
    n = 10_000
    tolerance = 5 * 2 * math.sqrt(p / (1 - p)) / math.sqrt(n)     # 5 standard errors
    ours = dropout_layer(x.expand(n, -1), p).mean(dim=0)
    theirs = nn.Dropout(p).train()(x.expand(n, -1)).mean(dim=0)
    torch.testing.assert_close(ours, x, atol=tolerance, rtol=0)
    torch.testing.assert_close(theirs, x, atol=tolerance, rtol=0)


def test_dropout_edge_cases_and_errors():
    X = torch.rand(50, 20) + 0.1
    assert torch.equal(dropout_layer(X, 0.0), X)
    assert torch.equal(dropout_layer(X, 1.0), torch.zeros_like(X))
    Y = dropout_layer(X, 0.5)
    assert torch.all((Y == 0) | (Y == 2 * X))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout_layer(X, bad)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_is_the_identity_in_eval_mode_and_scales_in_train_mode(p):
    torch.manual_seed(0)
    X = torch.rand(500, 64) + 0.1
    drop = nn.Dropout(p)
    drop.eval()
    assert torch.equal(drop(X), X)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 10)).eval()
    assert torch.equal(net(X), net(X))                  # deterministic once in eval mode
    drop.train()
    Y = drop(X)
    kept = Y != 0
    torch.testing.assert_close(Y[kept], X[kept] / (1 - p))


def test_dropout_narrows_the_train_test_gap_on_a_small_training_set():
    """Notebook 05's setup: 784-256-256-10, 1,000 training images, 30 epochs, 3 seeds.

    The gap is the full network's accuracy (eval mode) on the training images minus its test
    accuracy, averaged over the last five epochs and the three seeds.
    """
    _, test_iter = load_fashion_mnist(1000)
    train_eval_iter, _ = load_fashion_mnist(1000, num_train=1000)

    class TrainSetAccuracy:
        def __init__(self, net):
            self.net, self.values = net, []

        def update(self, history):
            self.values.append(evaluate_accuracy(self.net, train_eval_iter))

    def mean_gap(dropout1, dropout2):
        gaps = []
        for seed in SEEDS:
            set_seed(seed)
            train_iter, _ = load_fashion_mnist(32, num_train=1000)
            net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout1),
                                nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout2),
                                nn.Linear(256, 10))
            recorder = TrainSetAccuracy(net)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
            history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 30, optimizer,
                            plot=recorder)
            train_acc = torch.tensor(recorder.values[-5:])
            gaps.append((train_acc - torch.tensor(history.test_acc[-5:])).mean().item())
        return sum(gaps) / len(gaps)

    without, with_dropout = mean_gap(0.0, 0.0), mean_gap(0.2, 0.5)
    assert without > 0.1                  # the setup does overfit
    assert with_dropout < without
