"""The teaching claims of notebooks/04_underfitting_overfitting.ipynb, over seeds 0, 1 and 2.

The polynomial problem is rebuilt here exactly as the notebook builds it (seed 0 is the
notebook's own data; seeds 1 and 2 are other draws of it). The early-stopping runs use the
helpers on the notebook's Fashion-MNIST set-up, one run per seed.
"""

import copy
import math

import pytest
import torch
from torch import nn

from helpers import evaluate, load_fashion_mnist, set_seed, train

SEEDS = (0, 1, 2)
NOISE_FLOOR = 0.5                     # noise N(0, 1): half its variance
TRUE_B, TRUE_W = 5.0, torch.tensor([1.2, -3.4, 5.6], dtype=torch.float64)
DEGREES = range(21)


# ------------------------------------------------------------- the polynomial problem

def poly_features(x, degree):
    factorials = torch.tensor([math.factorial(i) for i in range(1, degree + 1)], dtype=x.dtype)
    return x[:, None] ** torch.arange(1, degree + 1) / factorials


def true_function(x):
    return TRUE_B + poly_features(x, 3) @ TRUE_W


def make_data(seed):
    """The notebook's data: a pool of 1,000 points (the first 30 train) and 1,000 test points."""
    g = torch.Generator().manual_seed(seed)

    def draw(n):
        x = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
        return x, true_function(x) + torch.randn(n, generator=g, dtype=torch.float64)

    x_pool, y_pool = draw(1000)
    x_test, y_test = draw(1000)
    return x_pool, y_pool, x_test, y_test


def with_bias(X):
    return torch.cat([torch.ones(len(X), 1, dtype=X.dtype), X], dim=1)


def solve_exact(X, y):
    """Least squares on unit-length columns, as in the notebook; fails if a direction is lost."""
    A = with_bias(X)
    scale = A.norm(dim=0)
    result = torch.linalg.lstsq(A / scale, y[:, None], driver="gelsd")
    assert result.rank == A.shape[1]
    solution = result.solution[:, 0] / scale
    return solution[1:], solution[0]


def loss_of(w, b, X, y):
    return ((X @ w + b - y) ** 2).mean().item() / 2


def k_fold_splits(n, k):
    folds = torch.arange(n).tensor_split(k)
    return [(torch.cat(folds[:i] + folds[i + 1:]), fold) for i, fold in enumerate(folds)]


@pytest.fixture(scope="module", params=SEEDS)
def problem(request):
    x_pool, y_pool, x_test, y_test = make_data(request.param)
    x, y = x_pool[:30], y_pool[:30]
    fits = {d: solve_exact(poly_features(x, d), y) for d in DEGREES}
    train_loss = [loss_of(*fits[d], poly_features(x, d), y) for d in DEGREES]
    test_loss = [loss_of(*fits[d], poly_features(x_test, d), y_test) for d in DEGREES]
    return dict(x_pool=x_pool, y_pool=y_pool, x=x, y=y, x_test=x_test, y_test=y_test,
                fits=fits, train=train_loss, test=test_loss)


def test_unit_length_columns_bring_the_condition_number_within_float64(problem):
    A = with_bias(poly_features(problem["x"], 20))
    assert torch.linalg.cond(A) > 1e16
    assert torch.linalg.cond(A / A.norm(dim=0)) < 1e10
    for n in (30, 50, 100, 200, 400, 1000):                 # the learning curve's fits
        solve_exact(poly_features(problem["x_pool"][:n], 20), problem["y_pool"][:n])


def test_degree_1_underfits_3_is_near_the_floor_20_overfits(problem):
    train_loss, test_loss = problem["train"], problem["test"]
    assert min(train_loss[1], test_loss[1]) > 3 * NOISE_FLOOR
    assert test_loss[3] < 1.6 * NOISE_FLOOR
    assert train_loss[20] < NOISE_FLOOR < test_loss[20] / 1e4


def test_the_test_loss_against_the_degree_is_a_u(problem):
    train_loss, test_loss = problem["train"], problem["test"]
    assert all(a >= b - 1e-9 for a, b in zip(train_loss, train_loss[1:]))
    assert min(test_loss[:3]) > 2 * NOISE_FLOOR
    assert test_loss.index(min(test_loss)) in (3, 4)
    assert min(test_loss[16:]) > 10 * NOISE_FLOOR
    assert test_loss[20] > 1e4 * NOISE_FLOOR


def test_more_data_closes_the_gap(problem):
    curves = {}
    for d in (3, 20):
        for n in (30, 50, 100, 200, 400, 1000):
            X = poly_features(problem["x_pool"][:n], d)
            w, b = solve_exact(X, problem["y_pool"][:n])
            curves.setdefault((d, "train"), []).append(loss_of(w, b, X, problem["y_pool"][:n]))
            curves.setdefault((d, "test"), []).append(
                loss_of(w, b, poly_features(problem["x_test"], d), problem["y_test"]))
    assert curves[20, "train"][0] < NOISE_FLOOR / 2
    assert curves[20, "test"][0] > 1e4 * NOISE_FLOOR
    assert curves[20, "test"][-1] < 1.02 * curves[3, "test"][-1]
    assert max(curves[3, "test"][1:]) < 1.2 * NOISE_FLOOR
    assert all(0.7 < c[i] / NOISE_FLOOR < 1.3 for c in curves.values() for i in (3, 4, 5))


def validation_table(problem, k):
    """Validation loss per degree (rows) and fold (columns)."""
    x, y = problem["x"], problem["y"]
    rows = []
    for d in DEGREES:
        X = poly_features(x, d)
        rows.append([loss_of(*solve_exact(X[tr], y[tr]), X[va], y[va])
                     for tr, va in k_fold_splits(30, k)])
    return torch.tensor(rows)


def test_k_fold_splits_makes_k_folds():
    for n, k in ((30, 5), (30, 7), (30, 30)):
        splits = k_fold_splits(n, k)
        assert len(splits) == k
        assert sorted(torch.cat([va for _, va in splits]).tolist()) == list(range(n))


def test_single_splits_disagree_and_k_fold_picks_a_low_degree(problem):
    val = validation_table(problem, 5)
    assert len(set(val.argmin(dim=0).tolist())) > 1
    pick = val.mean(dim=1).argmin().item()
    assert 3 <= pick <= 5
    assert problem["test"][pick] < 1.5 * min(problem["test"])


def test_leave_one_out_picks_a_low_degree(problem):                       # exercise 2
    assert 3 <= validation_table(problem, 30).mean(dim=1).argmin().item() <= 5


def test_the_worst_test_points_lie_beyond_the_training_points(problem):   # exercise 1
    w, b = problem["fits"][20]
    errors = (poly_features(problem["x_test"], 20) @ w + b - problem["y_test"]) ** 2
    worst = problem["x_test"][errors.topk(10).indices]
    assert ((worst < problem["x"].min()) | (worst > problem["x"].max())).all()


def test_gradient_descent_barely_moves_the_high_degree_weights(problem):  # exercise 3
    x, y = problem["x"], problem["y"]
    X, X_test = poly_features(x, 20), poly_features(problem["x_test"], 20)
    w, b = torch.zeros(20, dtype=X.dtype), torch.zeros((), dtype=X.dtype)
    for _ in range(3000):
        r = X @ w + b - y
        w -= 0.2 * X.T @ r / len(r)
        b -= 0.2 * r.mean()
    assert loss_of(w, b, X_test, problem["y_test"]) < 1.5 * problem["test"][3]
    assert w[7:].abs().max() < 0.1
    assert problem["fits"][20][0][7:].abs().max() > 1e10


def test_without_noise_degree_20_recovers_the_cubic(problem):             # the playground
    x, x_test = problem["x"], problem["x_test"]
    w, b = solve_exact(poly_features(x, 20), true_function(x))
    assert loss_of(w, b, poly_features(x_test, 20), true_function(x_test)) < 1e-6


# ------------------------------------------------------- early stopping on Fashion-MNIST

NUM_TRAIN, BATCH_SIZE, LR, NUM_EPOCHS, HIDDEN = 1024, 32, 0.25, 40, 128


class KeepBest:
    def __init__(self, net):
        self.net, self.best_loss = net, float("inf")

    def update(self, history):
        if history.test_loss[-1] < self.best_loss:
            self.best_loss, self.best_epoch = history.test_loss[-1], len(history.test_loss)
            self.best_weights = copy.deepcopy(self.net.state_dict())


def stop_with_patience(losses, patience):
    best, since = 0, 0
    for epoch in range(1, len(losses)):
        if losses[epoch] < losses[best]:
            best, since = epoch, 0
        else:
            since += 1
        if since == patience:
            return epoch + 1, best + 1
    return len(losses), best + 1


@pytest.fixture(scope="module", params=SEEDS)
def early_stopping(request):
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE, num_train=NUM_TRAIN)
    everything, _ = load_fashion_mnist(1000)
    val_iter = [(everything.X[-1000:], everything.y[-1000:])]
    set_seed(request.param)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    loss, keeper = nn.CrossEntropyLoss(), KeepBest(net)
    history = train(net, train_iter, val_iter, loss, NUM_EPOCHS,
                    torch.optim.SGD(net.parameters(), lr=LR), plot=keeper)
    end_weights = copy.deepcopy(net.state_dict())
    net.load_state_dict(end_weights)
    test_at_end, acc_at_end = evaluate(net, test_iter, loss)
    net.load_state_dict(keeper.best_weights)
    test_at_best, acc_at_best = evaluate(net, test_iter, loss)
    return dict(val=history.test_loss, train=history.train_loss, best_epoch=keeper.best_epoch,
                test_at_end=test_at_end, test_at_best=test_at_best,
                acc_at_end=acc_at_end, acc_at_best=acc_at_best)


def test_stopping_at_the_lowest_validation_loss_beats_training_to_the_end(early_stopping):
    run = early_stopping
    assert run["best_epoch"] <= NUM_EPOCHS - 10
    assert run["test_at_best"] < run["test_at_end"] - 0.05
    assert abs(run["acc_at_best"] - run["acc_at_end"]) < 0.015          # accuracy: the same
    assert run["train"][-1] < run["train"][run["best_epoch"] - 1]      # still falling
    assert sum(run["val"][-10:]) / 10 > min(run["val"]) + 0.08          # the last ten drift up


def test_patience_counts_from_the_second_epoch():
    assert stop_with_patience([1.0, 0.9, 0.8], 1) == (3, 3)
    assert stop_with_patience([1.0, 1.1, 0.8, 0.9], 1) == (2, 1)
    assert stop_with_patience([1.0, 1.1, 0.8, 0.9, 0.95], 2) == (5, 3)


def test_patience_5_keeps_a_good_epoch_patience_2_a_bad_one(early_stopping):  # exercise 4
    val = early_stopping["val"]
    stopped, kept = stop_with_patience(val, 5)
    assert stopped < NUM_EPOCHS and val[kept - 1] < min(val) + 0.05
    stopped, kept = stop_with_patience(val, 2)
    assert stopped <= 12 and val[kept - 1] > min(val) + 0.05
