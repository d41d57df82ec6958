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


def with_bias_column(X):
    return torch.cat([torch.ones(len(X), 1, dtype=X.dtype), X], dim=1)


def solve_exact(X, y):
    """Least squares on unit-length columns (the notebook's `solve_exact`): w, b and the rank."""
    A = with_bias_column(X)
    scale = A.norm(dim=0)
    result = torch.linalg.lstsq(A / scale, y[:, None], driver="gelsd")
    solution = result.solution[:, 0] / scale
    return solution[1:], solution[0], result.rank.item()


@pytest.mark.parametrize("seed", SEEDS)
def test_unit_length_columns_let_lstsq_use_every_direction(seed):
    """As is, the degree-20 matrix is beyond float64 and lstsq drops directions; scaled, not."""
    x_train, y_train, _, _ = make_poly_data(seed)
    A = with_bias_column(poly_features(x_train, 20))
    assert torch.linalg.cond(A) > 1e16                         # beyond float64's 16 digits
    assert torch.linalg.lstsq(A, y_train[:, None], driver="gelsd").rank < 21
    for degree in range(21):
        assert solve_exact(poly_features(x_train, degree), y_train)[2] == degree + 1


@pytest.mark.parametrize("seed", SEEDS)
def test_degree_20_has_higher_test_loss_than_degree_3(seed):
    x_train, y_train, x_test, y_test = make_poly_data(seed)
    test_loss, train_loss = {}, {}
    for degree in (3, 20):
        X, X_test = poly_features(x_train, degree), poly_features(x_test, degree)
        w, b = fit(X, y_train, lr=0.2, num_steps=4000)              # trained as in the notebook
        test_loss["gd", degree] = squared_loss(X_test @ w + b, y_test).item()
        w, b, _ = solve_exact(X, y_train)                            # trained to the end
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


@pytest.mark.parametrize("seed", SEEDS)
def test_with_momentum_weight_decay_is_still_the_penalty(seed):
    """PyTorch adds lam * w to the gradient before the momentum step, as the penalty would."""
    X_tr, y_tr, _, _, init_net = make_high_dim_data(seed)
    lam = 3.0
    net_decay, net_penalty = copy.deepcopy(init_net), copy.deepcopy(init_net)
    opt_decay = torch.optim.SGD([{"params": [net_decay.weight], "weight_decay": lam},
                                 {"params": [net_decay.bias]}], lr=0.03, momentum=0.9)
    opt_penalty = torch.optim.SGD(net_penalty.parameters(), lr=0.03, momentum=0.9)
    for _ in range(200):
        for net, optimizer, penalty in [(net_decay, opt_decay, 0.0),
                                        (net_penalty, opt_penalty, lam)]:
            loss = squared_loss(net(X_tr)[:, 0], y_tr) + penalty / 2 * (net.weight**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.testing.assert_close(net_decay.weight, net_penalty.weight)
    torch.testing.assert_close(net_decay.bias, net_penalty.bias)


@pytest.mark.parametrize(("lr", "lam", "beta"), [(0.02, 0.01, 0.9), (0.1, 0.001, 0.5)])
def test_with_momentum_each_step_shrinks_by_about_lr_lam_over_one_minus_beta(lr, lam, beta):
    p = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=beta, weight_decay=lam)
    for _ in range(300):
        optimizer.zero_grad()
        (0 * p).sum().backward()
        optimizer.step()
    before = p.item()
    optimizer.step()
    torch.testing.assert_close(1 - p.item() / before, lr * lam / (1 - beta), rtol=0.05, atol=0)


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


# ---------------------------------------- the 1,000-image MLP runs (04 section 9, 05 section 7)

CONFIGS = {   # dropout1, dropout2, weight decay (on the weights only)
    "plain": (0.0, 0.0, 0.0),
    "weight decay": (0.0, 0.0, 0.01),                 # notebook 04
    "dropout": (0.2, 0.5, 0.0),                       # notebook 05
    "dropout + weight decay": (0.2, 0.5, 0.005),      # notebook 05
}


@pytest.fixture(scope="module")
def mlp_runs():
    """The notebooks' setup: 784-256-256-10, 1,000 training images, all 10,000 test images,
    SGD with momentum 0.9, lr 0.02, batch 32, 30 epochs, seeds 0, 1, 2.

    Per configuration, averaged over the seeds: accuracies and gap over the last five epochs
    (training accuracy of the full network in eval mode, and as `train` logs it), the lowest
    point of the mean test-loss curve and the test loss over the last five epochs, and, from
    the final networks, the weight norm and the confidence on wrong test answers.
    """
    _, test_iter = load_fashion_mnist(1000)
    train_eval_iter, _ = load_fashion_mnist(1000, num_train=1000)
    images, labels = (torch.cat(parts) for parts in zip(*test_iter))

    class TrainSetAccuracy:
        def __init__(self, net):
            self.net, self.values = net, []

        def update(self, history):
            self.values.append(evaluate_accuracy(self.net, train_eval_iter))

    def one_run(dropout1, dropout2, weight_decay, seed):
        set_seed(seed)
        train_iter, _ = load_fashion_mnist(32, num_train=1000)
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout1),
                            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout2),
                            nn.Linear(256, 10))
        weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
        optimizer = torch.optim.SGD([{"params": weights, "weight_decay": weight_decay},
                                     {"params": biases}], lr=0.02, momentum=0.9)
        recorder = TrainSetAccuracy(net)
        history = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 30, optimizer,
                        plot=recorder)
        net.eval()
        with torch.no_grad():
            top_prob, top_class = torch.softmax(net(images), dim=1).max(dim=1)
        return {"train_acc": torch.tensor(recorder.values),
                "logged_train_acc": torch.tensor(history.train_acc),
                "test_acc": torch.tensor(history.test_acc),
                "test_loss": torch.tensor(history.test_loss),
                "norm": torch.cat([w.detach().flatten() for w in weights]).norm().item(),
                "confidence": top_prob[top_class != labels].mean().item()}

    results = {}
    for label, config in CONFIGS.items():
        runs = [one_run(*config, seed) for seed in SEEDS]
        per_epoch = {key: torch.stack([r[key] for r in runs])
                     for key in ("train_acc", "logged_train_acc", "test_acc", "test_loss")}
        last5 = {key: values[:, -5:].mean().item() for key, values in per_epoch.items()}
        lowest = per_epoch["test_loss"].mean(0).min().item()
        results[label] = {
            "train": last5["train_acc"], "logged": last5["logged_train_acc"],
            "test": last5["test_acc"], "gap": last5["train_acc"] - last5["test_acc"],
            "lowest": lowest, "end": last5["test_loss"], "rise": last5["test_loss"] - lowest,
            "norm": sum(r["norm"] for r in runs) / len(runs),
            "confidence": sum(r["confidence"] for r in runs) / len(runs),
        }
    return results


def test_the_plain_mlp_overfits_and_its_test_loss_climbs_back(mlp_runs):
    plain = mlp_runs["plain"]
    assert plain["train"] > 0.9 and plain["gap"] > 0.1       # by accuracy
    assert plain["rise"] > 0.1                                # by test loss


def test_weight_decay_narrows_the_gap_and_stops_the_climb_but_not_the_accuracy(mlp_runs):
    plain, decay = mlp_runs["plain"], mlp_runs["weight decay"]
    assert decay["gap"] < plain["gap"] - 0.02
    assert decay["test"] < plain["test"] + 0.01               # no better test accuracy
    assert decay["rise"] < plain["rise"] / 2                  # the test loss stays near its best
    assert abs(decay["lowest"] - plain["lowest"]) < 0.05      # about the same lowest point
    assert decay["norm"] < plain["norm"] / 1.5                # smaller weights ...
    assert decay["confidence"] < plain["confidence"] - 0.05   # ... less sure when wrong


def test_dropout_narrows_the_gap_and_slows_the_climb(mlp_runs):
    plain, dropout, both = (mlp_runs[k] for k in ("plain", "dropout", "dropout + weight decay"))
    assert dropout["gap"] < plain["gap"] - 0.01 and both["gap"] < plain["gap"] - 0.01
    assert dropout["logged"] < dropout["train"] - 0.01        # logged with dropout on: too low
    assert dropout["rise"] < 0.75 * plain["rise"]
    assert both["rise"] < plain["rise"] / 2
    assert dropout["end"] < plain["end"] - 0.05 and both["end"] < plain["end"] - 0.05
    test_accs = [plain["test"], dropout["test"], both["test"]]
    assert max(test_accs) - min(test_accs) < 0.015            # test accuracy: about the same
