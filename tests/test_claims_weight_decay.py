"""The teaching claims of notebooks/05_weight_decay.ipynb, over seeds 0, 1 and 2.

The polynomial problem is notebook 04's, rebuilt exactly (seed 0 is the notebooks' own data;
seeds 1 and 2 are other draws). The MLP runs use the helpers on the notebook's set-up: 1,024
Fashion-MNIST images, a 784-128-10 MLP, plain SGD, the loss per epoch on notebook 04's validation
set (the last 1,000 training images). To keep this file fast, the answers of exercises 3 and 4
(longer training, more data) and the playground's static run are re-checked on seed 0, the
notebook's (they held on seeds 1 and 2 when written); every other claim on seeds 0, 1 and 2.
Claims the notebook makes about its own draw of the polynomial data ("on this draw") are checked
on seed 0 only.
"""

import copy
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from helpers import load_fashion_mnist, set_seed, train

SEEDS = (0, 1, 2)
NOISE_FLOOR = 0.5
TRUE_B, TRUE_W = 5.0, torch.tensor([1.2, -3.4, 5.6], dtype=torch.float64)
LAM, LR = 0.01, 0.2
LAMBDAS = [10.0**k for k in range(-8, 3)]


# ------------------------------------------------------------- the polynomial problem

def poly_features(x, degree):
    factorials = torch.tensor([math.factorial(i) for i in range(1, degree + 1)], dtype=x.dtype)
    return x[:, None] ** torch.arange(1, degree + 1) / factorials


def make_data(n, generator):
    x = 4 * torch.rand(n, generator=generator, dtype=torch.float64) - 2
    y = TRUE_B + poly_features(x, 3) @ TRUE_W
    return x, y + torch.randn(n, generator=generator, dtype=torch.float64)


def squared_loss(y_hat, y):
    return ((y_hat - y) ** 2).mean() / 2


def loss_of(w, b, X, y):
    return squared_loss(X @ w + b, y).item()


def solve_penalized(X, y, lam):
    n, p = X.shape
    A = torch.cat([torch.ones(n, 1, dtype=X.dtype), X], dim=1)
    A = torch.cat([A, math.sqrt(n * lam) * torch.eye(p + 1, dtype=X.dtype)[1:]])
    target = torch.cat([y, torch.zeros(p, dtype=X.dtype)])
    scale = A.norm(dim=0)
    result = torch.linalg.lstsq(A / scale, target[:, None], driver="gelsd")
    assert result.rank == p + 1
    solution = result.solution[:, 0] / scale
    return solution[1:], solution[0]


def k_fold_splits(n, k):
    folds = torch.arange(n).tensor_split(k)
    return [(torch.cat(folds[:i] + folds[i + 1:]), fold) for i, fold in enumerate(folds)]


@pytest.fixture(scope="module", params=SEEDS)
def poly(request):
    g = torch.Generator().manual_seed(request.param)
    x_pool, y_pool = make_data(1000, g)
    x_test, y_test = make_data(1000, g)
    x, y = x_pool[:30], y_pool[:30]
    return dict(seed=request.param, x=x, y=y, x_test=x_test, y_test=y_test,
                X=poly_features(x, 20), X_test=poly_features(x_test, 20))


def fit_l1(X, y, lam, num_steps=3000):
    w, b = torch.zeros(20, dtype=X.dtype), torch.zeros((), dtype=X.dtype)
    for _ in range(num_steps):
        r = X @ w + b - y
        w, b = w - LR * X.T @ r / len(r), b - LR * r.mean()
        w = w.sign() * (w.abs() - LR * lam).clamp(min=0)
    return w, b


def fit_sgd(X, y, lam, num_steps=3000, decay_bias=False):
    """Full-batch SGD from zero with weight decay, as the notebook's `fit_l2` (its optimizer
    steps, written out: the step-for-step test below shows that they are the same)."""
    w, b = torch.zeros(20, dtype=X.dtype), torch.zeros((), dtype=X.dtype)
    for _ in range(num_steps):
        r = X @ w + b - y
        w, b = w - LR * (X.T @ r / len(r) + lam * w), b - LR * (r.mean() + decay_bias * lam * b)
    return w, b


def test_the_penalty_in_the_loss_equals_weight_decay_step_for_step(poly):
    X, y = poly["X"], poly["y"]
    set_seed(poly["seed"])
    net = nn.Linear(20, 1, dtype=torch.float64)
    w = net.weight.detach()[0].clone().requires_grad_()
    b = net.bias.detach()[0].clone().requires_grad_()
    optimizer = torch.optim.SGD([{"params": [net.weight], "weight_decay": LAM},
                                 {"params": [net.bias]}], lr=LR)
    for _ in range(100):
        (squared_loss(X @ w + b, y) + LAM / 2 * (w**2).sum()).backward()
        with torch.no_grad():
            for p in (w, b):
                p -= LR * p.grad
                p.grad = None
        optimizer.zero_grad()
        squared_loss(net(X)[:, 0], y).backward()
        optimizer.step()
        assert_close(net.weight.detach()[0], w.detach())
        assert_close(net.bias.detach()[0], b.detach())


def test_l1_sets_weights_to_zero_and_l2_shrinks_all(poly):
    X, y, X_test, y_test = poly["X"], poly["y"], poly["X_test"], poly["y_test"]
    w1, b1 = fit_l1(X, y, LAM)
    w2, b2 = fit_sgd(X, y, LAM)
    assert (w1 == 0).sum() >= 15 and (w1[1:3] != 0).all()
    assert (w2 == 0).sum() == 0
    assert loss_of(w1, b1, X_test, y_test) < 1.5 * NOISE_FLOOR
    assert loss_of(w2, b2, X_test, y_test) < 1.5 * NOISE_FLOOR
    assert_close(w2, solve_penalized(X, y, LAM)[0], atol=1e-2, rtol=0)   # converged


def test_the_lambda_sweep(poly):
    X, y, X_test, y_test = poly["X"], poly["y"], poly["X_test"], poly["y_test"]
    fits = [solve_penalized(X, y, lam) for lam in LAMBDAS]
    norms = [w.norm().item() for w, _ in fits]
    train_loss = [loss_of(w, b, X, y) for w, b in fits]
    test_loss = [loss_of(w, b, X_test, y_test) for w, b in fits]
    exact = loss_of(*solve_penalized(X, y, 0.0), X_test, y_test)
    mean = squared_loss(y.mean(), y_test).item()
    degree_3 = loss_of(*solve_penalized(poly_features(poly["x"], 3), y, 0.0),
                       poly_features(poly["x_test"], 3), y_test)
    assert all(a > b for a, b in zip(norms, norms[1:]))
    assert all(a <= b for a, b in zip(train_loss, train_loss[1:]))
    assert max(test_loss[:8]) < exact / 1e5
    assert_close(test_loss[-1], mean, rtol=0.05, atol=0)
    assert min(test_loss) < 1.05 * degree_3                 # the best λ: as good as degree 3
    if poly["seed"] == 0:                                   # the notebook's own draw
        assert min(test_loss) < degree_3 - 0.1              # ... and here clearly better
        assert max(test_loss[1:4]) > 1.5 * test_loss[0]     # its bump at 1e-7 .. 1e-5
    else:                                                   # other draws: no bump there
        assert all(a > b for a, b in zip(test_loss[:6], test_loss[1:6]))


def test_cross_validated_lambda_against_the_baselines(poly):
    y, X, X_test, y_test = poly["y"], poly["X"], poly["X_test"], poly["y_test"]
    cv = [sum(loss_of(*solve_penalized(X[tr], y[tr], lam), X[va], y[va])
              for tr, va in k_fold_splits(30, 5)) / 5 for lam in LAMBDAS]
    ours = loss_of(*solve_penalized(X, y, LAMBDAS[cv.index(min(cv))]), X_test, y_test)
    mean = squared_loss(y.mean(), y_test).item()
    w_gd, b_gd = fit_sgd(X, y, 0.0)
    from_zero = loss_of(w_gd, b_gd, X_test, y_test)
    assert ours < mean / 10
    assert 0.8 < ours / from_zero < 1.25
    assert w_gd[7:].abs().max() < 0.1                       # high-degree weights stay tiny


def test_decaying_the_bias_too_pulls_it_down_and_costs_test_loss(poly):      # exercise 2
    X, y, X_test, y_test = poly["X"], poly["y"], poly["X_test"], poly["y_test"]
    w_w, b_w = fit_sgd(X, y, 0.1, num_steps=300)
    w_all, b_all = fit_sgd(X, y, 0.1, num_steps=300, decay_bias=True)
    assert b_all < b_w - 0.4
    assert loss_of(w_all, b_all, X_test, y_test) > 1.2 * loss_of(w_w, b_w, X_test, y_test)


def test_decay_alone_multiplies_by_one_minus_lr_lambda():                     # exercise 1
    p = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.25, weight_decay=0.01)
    for _ in range(100):
        p.grad = torch.zeros_like(p)
        optimizer.step()
    assert_close(p.item(), (1 - 0.25 * 0.01) ** 100)


# ------------------------------------------------------------------ the MLP (section 6)

def sgd_with_decay(net, lr, weight_decay):
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    return torch.optim.SGD([{"params": weights, "weight_decay": weight_decay},
                            {"params": biases}], lr=lr)


def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture(scope="module")
def test_data():
    everything, test_iter = load_fashion_mnist(1000)
    return test_iter, [(everything.X[-1000:], everything.y[-1000:])]   # test, validation


def train_mlp(val_iter, weight_decay, seed, num_epochs=40, num_train=1024):
    set_seed(seed)
    train_iter, _ = load_fashion_mnist(32, num_train=num_train)
    net = make_net()
    history = train(net, train_iter, val_iter, nn.CrossEntropyLoss(), num_epochs,
                    sgd_with_decay(net, 0.25, weight_decay), plot=False)
    history.net = net
    return history


@pytest.fixture(scope="module")
def runs(test_data):
    _, val_iter = test_data
    return {wd: [train_mlp(val_iter, wd, seed) for seed in SEEDS] for wd in (0.0, 0.01)}


def summary(histories):
    loss = torch.tensor([h.test_loss for h in histories]).median(dim=0).values
    acc = torch.tensor([h.test_acc for h in histories])
    return {"lowest": loss.min().item(), "climb": (loss[-5:].mean() - loss.min()).item(),
            "best acc": acc.max(dim=1).values.mean().item(),
            "best of last 5": acc[:, -5:].max(dim=1).values.mean().item()}


def test_the_validation_loss_climbs_while_the_accuracy_sits_still(runs):
    plain, decay = summary(runs[0.0]), summary(runs[0.01])
    assert plain["climb"] > 0.08 and decay["climb"] < plain["climb"] / 2
    climbs = {wd: [sum(h.test_loss[-5:]) / 5 - min(h.test_loss) for h in hs]
              for wd, hs in runs.items()}
    assert all(c0 > cd for c0, cd in zip(climbs[0.0], climbs[0.01]))     # every seed
    assert abs(decay["lowest"] - plain["lowest"]) < 0.03
    assert plain["best acc"] - plain["best of last 5"] < 0.015
    assert decay["best of last 5"] < plain["best of last 5"] - 0.01       # slightly worse


def test_weight_decay_keeps_weights_small_and_mistakes_less_confident(runs, test_data):
    test_iter, _ = test_data

    def weight_norm(net):
        return torch.cat([p.detach().flatten() for name, p in net.named_parameters()
                          if name.endswith("weight")]).norm().item()

    def confidence_when_wrong(net):
        with torch.no_grad():
            top_prob, top_class = torch.softmax(net(test_iter.X), dim=1).max(dim=1)
        return top_prob[top_class != test_iter.y].mean().item()

    set_seed(0)
    start = weight_norm(make_net())
    norm = {wd: sum(weight_norm(h.net) for h in hs) / 3 for wd, hs in runs.items()}
    confidence = {wd: sum(confidence_when_wrong(h.net) for h in hs) / 3 for wd, hs in runs.items()}
    assert norm[0.0] > 2 * start and norm[0.01] < 0.55 * norm[0.0]
    assert confidence[0.01] < confidence[0.0] - 0.1


@pytest.mark.parametrize("seed", [0])
def test_trained_on_the_decayed_network_climbs_too(runs, test_data, seed):   # exercise 3
    _, val_iter = test_data
    first = runs[0.01][seed]
    net = copy.deepcopy(first.net)
    set_seed(seed)
    train_iter, _ = load_fashion_mnist(32, num_train=1024)
    more = train(net, train_iter, val_iter, nn.CrossEntropyLoss(), 20,
                 sgd_with_decay(net, 0.25, 0.01), plot=False)
    losses = first.test_loss + more.test_loss
    assert sum(losses[-5:]) / 5 > min(losses) + 0.05


@pytest.mark.parametrize("seed", [0])
def test_twice_the_data_beats_weight_decay(runs, test_data, seed):         # exercise 4
    _, val_iter = test_data
    more = train_mlp(val_iter, 0.0, seed, num_epochs=15, num_train=2048)
    assert min(more.test_loss) < min(min(h.test_loss) for h in runs[0.01]) - 0.03


@pytest.mark.parametrize("seed", [0])                      # the playground trains seed 0
def test_too_much_decay_underfits(runs, test_data, seed):                  # its static run
    _, val_iter = test_data
    strong = train_mlp(val_iter, 0.03, seed, num_epochs=20)
    assert sum(strong.train_loss[-5:]) / 5 > 2 * runs[0.0][seed].train_loss[19]
    assert min(strong.test_loss) > min(runs[0.0][seed].test_loss) + 0.05
