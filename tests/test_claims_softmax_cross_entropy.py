"""The teaching claims of notebook 09 (softmax and cross-entropy, opened up), re-checked with
the helpers over seeds 0, 1, 2, in the notebook's settings.

The seed sets both the starting weights and the order of the batches. The training runs are
the notebook's: softmax regression for 3 epochs on all 60,000 images (the softmax-first bug,
maximum likelihood, temperature), and on 5,120 images for the batch-size experiments and the
playground (sections 8 and 9). There the test pass runs on 1,000 images to save time (the
notebook's playground claim on the mean test loss of the last 3 epochs is checked on these
1,000).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import TEXT_LABELS, evaluate, load_fashion_mnist, set_seed, train

SEEDS = [0, 1, 2]
SMALL = 5_120                                    # the notebook's subset for sections 8 and 9


# --- small local versions of the notebook's from-scratch code -------------------------------

def softmax_naive(Z):
    E = torch.exp(Z)
    return E / E.sum(dim=1, keepdim=True)


def softmax(Z):
    Z = Z - Z.max(dim=1, keepdim=True).values
    E = torch.exp(Z)
    return E / E.sum(dim=1, keepdim=True)


def logsumexp(Z):
    m = Z.max(dim=1, keepdim=True).values
    return m + torch.log(torch.exp(Z - m).sum(dim=1, keepdim=True))


def log_softmax(Z):
    Z = Z - Z.max(dim=1, keepdim=True).values
    return Z - logsumexp(Z)


def cross_entropy(Z, y):
    return -log_softmax(Z).gather(1, y.unsqueeze(1)).squeeze(1)


def entropy(Z):
    log_P = log_softmax(Z)
    return -(log_P.exp() * log_P).sum(dim=1)


def softmax_first(Z, y):
    return F.cross_entropy(torch.softmax(Z, dim=1), y)


def fit(loss, seed, lr=0.1, batch_size=256, num_epochs=3, num_train=None, net=None,
        quick_test=False):
    """The notebook's `fit`, with a seed; `quick_test` evaluates on 1,000 images only."""
    set_seed(seed)
    train_iter, test_iter = load_fashion_mnist(batch_size, device="cpu", num_train=num_train)
    if quick_test:
        test_iter, _ = load_fashion_mnist(1000, device="cpu", num_train=1000)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)) if net is None else net
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return train(net, train_iter, test_iter, loss, num_epochs, optimizer, plot=False), net


@pytest.fixture(scope="module")
def full_runs():
    """Per seed: (history, net, history of the bug), 3 epochs on all 60,000 images."""
    runs = {}
    for seed in SEEDS:
        history, net = fit(nn.CrossEntropyLoss(), seed)
        history_bug, _ = fit(softmax_first, seed)
        runs[seed] = history, net, history_bug
    return runs


@pytest.fixture(scope="module")
def test_set():
    _, test_iter = load_fashion_mnist(1000, device="cpu")
    return test_iter


# --- 1. overflow and underflow -------------------------------------------------------------

def rows(t):
    return torch.stack([t, t - 1, t - 2], dim=1)


def test_naive_softmax_is_0_from_88_32_and_nan_from_88_72():
    limit = math.log(torch.finfo(torch.float32).max)
    assert abs(limit - 88.72) < 0.005
    t = torch.linspace(87.8, 89.2, 1401)
    P = softmax_naive(rows(t))
    zero_from = t[P[:, 0] == 0].min().item()
    nan_from = t[P[:, 0].isnan()].min().item()
    assert abs(nan_from - limit) < 2e-3 and P[t > limit + 1e-3, 0].isnan().all()
    assert abs(zero_from - (limit - math.log(1 + math.exp(-1) + math.exp(-2)))) < 2e-3
    assert abs(zero_from - 88.32) < 0.005
    torch.testing.assert_close(P[t < 88.3], torch.softmax(rows(t[t < 88.3]), dim=1))


def test_naive_softmax_drifts_then_underflows_far_below_zero():
    t = torch.linspace(-106.0, -96.0, 1001)
    P = softmax_naive(rows(t))
    exact = torch.softmax(torch.tensor([[0.0, -1.0, -2.0]]), dim=1)[0]
    drift = (P[:, 0] - exact[0]).abs()
    assert drift[t > -97].max() < 1e-3
    assert drift[(t > -102) & (t < -99)].max() > 0.05
    assert (P[(t > -103.9) & (t < -102.1), 2] == 0).all()
    certain = t[P[:, 0] == 1]                        # "between -104 and -103, p1 = 1"
    assert len(certain) > 90 and certain.min() > -104 and certain.max() < -102.9
    assert P[t < -104].isnan().all() and not P[t > -103.9].isnan().any()


# --- 2. and 3. the fixes -------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1000.0])
def test_stable_softmax_log_softmax_and_logsumexp_match_pytorch(seed, scale):
    set_seed(seed)
    Z = scale * torch.randn(256, 10)
    for c in (-50.0, 3.0, 80.0):
        if scale == 1.0:                             # the naive formula is fine there
            torch.testing.assert_close(softmax_naive(Z + c), softmax_naive(Z))
        torch.testing.assert_close(softmax(Z + c), softmax(Z))
    torch.testing.assert_close(softmax(Z), torch.softmax(Z, dim=1))
    torch.testing.assert_close(logsumexp(Z), torch.logsumexp(Z, dim=1, keepdim=True))
    torch.testing.assert_close(log_softmax(Z), F.log_softmax(Z, dim=1))
    assert softmax(Z).isfinite().all() and log_softmax(Z).isfinite().all()


def test_log_of_softmax_is_minus_inf_where_log_softmax_is_exact():
    two = torch.tensor([[0.0, 200.0]])
    assert torch.log(softmax(two))[0, 0] == -math.inf
    torch.testing.assert_close(log_softmax(two), torch.tensor([[-200.0, 0.0]]))


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_from_logits_survives_where_notebook_00s_way_does_not(seed):
    set_seed(seed)
    Z = 1000 * torch.randn(256, 10)
    y = torch.randint(0, 10, (256,))
    naive = -torch.log(softmax_naive(Z).gather(1, y.unsqueeze(1)))
    ours = cross_entropy(Z, y)
    torch.testing.assert_close(ours, F.cross_entropy(Z, y, reduction="none"))
    assert (~naive.isfinite()).float().mean() > 0.9 and ours.isfinite().all()


# --- 4. the slope of softmax ----------------------------------------------------------------

def softmax_jacobian(z):
    return torch.autograd.functional.jacobian(lambda v: softmax(v[None])[0], z)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_softmax_jacobian_and_the_gradient_p_minus_y(seed):
    set_seed(seed)
    z, g = 3 * torch.randn(10), torch.randn(10)
    p, J = softmax(z[None])[0], softmax_jacobian(z)
    torch.testing.assert_close(J, torch.diag(p) - torch.outer(p, p))
    torch.testing.assert_close(J.sum(dim=1), torch.zeros(10))
    for y in range(10):
        torch.testing.assert_close(-J[y] / p[y], p - F.one_hot(torch.tensor(y), 10))
    g = g - g.mean()
    torch.testing.assert_close(softmax_jacobian(torch.zeros(10)) @ g, g / 10)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_gradient_of_the_loss_is_p_minus_y(seed):
    """Notebook 02's result, which section 4 points back to."""
    set_seed(seed)
    Z = (3 * torch.randn(64, 10)).requires_grad_(True)
    y = torch.randint(0, 10, (64,))
    (grad,) = torch.autograd.grad(cross_entropy(Z, y).sum(), Z)
    torch.testing.assert_close(grad, softmax(Z.detach()) - F.one_hot(y, num_classes=10))


# --- 5. logits, not probabilities ------------------------------------------------------------

def test_a_softmax_before_the_loss_traps_it_and_starves_the_confidently_wrong():
    z = torch.linspace(-10, 10, 201)
    logits = torch.cat([z[:, None], torch.zeros(201, 9)], dim=1).requires_grad_(True)
    target = torch.zeros(201, dtype=torch.long)
    right = F.cross_entropy(logits, target, reduction="none")
    wrong = F.cross_entropy(softmax(logits), target, reduction="none")
    floor = math.log(1 + 9 / math.e)
    assert abs(floor - 1.46) < 0.005 and abs(math.log(math.e + 9) - 2.46) < 0.005
    assert abs(wrong[-1] - floor) < 1e-3                     # z_y = 10: at the floor
    (g_right,) = torch.autograd.grad(right.sum(), logits)
    (g_wrong,) = torch.autograd.grad(wrong.sum(), logits)
    assert right[0] > 12 and g_right[0, 0].abs() > 0.99 and g_wrong[0, 0].abs() < 1e-5


@pytest.mark.parametrize("seed", SEEDS)
def test_at_the_start_the_bugs_gradient_is_a_tenth(seed):
    train_iter, _ = load_fashion_mnist(256, device="cpu")
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    X, y = train_iter.X[:256], train_iter.y[:256]            # the first 256 images
    g_right, g_bug = (torch.autograd.grad(f(net(X), y), net[1].weight)[0]
                      for f in (F.cross_entropy, softmax_first))
    assert 8 < (g_right.norm() / g_bug.norm()).item() < 13


@pytest.mark.parametrize("seed", SEEDS)
def test_the_bug_ends_more_than_5_points_behind(full_runs, seed):
    history, _, history_bug = full_runs[seed]
    assert max(history_bug.test_acc[-3:]) < max(history.test_acc[-3:]) - 0.05, (
        history.test_acc, history_bug.test_acc)
    assert history_bug.train_loss[-1] > 1.46


# --- 6. maximum likelihood ------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_mean_negative_log_likelihood_is_the_test_loss(full_runs, test_set, seed):
    history, net, _ = full_runs[seed]
    with torch.no_grad():
        log_p = log_softmax(net(test_set.X)).gather(1, test_set.y.unsqueeze(1)).squeeze(1)
    assert len(log_p) == 10_000 and log_p.double().exp().prod() == 0     # even in float64
    assert abs(-log_p.mean().item() - history.test_loss[-1]) < 1e-4     # train's test loss
    test_loss, _ = evaluate(net, test_set, nn.CrossEntropyLoss())
    assert abs(-log_p.mean().item() - test_loss) < 1e-4


# --- 7. temperature and entropy ----------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_temperature_keeps_the_order_and_entropy_grows(full_runs, test_set, seed):
    _, net, _ = full_runs[seed]
    shirt = TEXT_LABELS.index("shirt")
    with torch.no_grad():
        z = net(test_set.X[test_set.y == shirt][:1])
    temperatures = torch.tensor([0.05, 0.25, 0.5, 1.0, 2.0, 4.0, 100.0])
    H, P = entropy(z / temperatures[:, None]), softmax(z / temperatures[:, None])
    assert (H.diff() > 0).all() and H[0] < 0.05 and abs(H[-1] - math.log(10)) < 0.01
    assert (P[1:].argsort(dim=1) == z.argsort(dim=1)).all()
    top = z[0].argmax().item()
    ranked = [TEXT_LABELS[k] for k in z[0].argsort(descending=True)]
    assert top == shirt and ranked[:3] == ["shirt", "t-shirt", "pullover"], ranked
    unlikely = z[0].argsort()[:5]
    assert P[2, top] > P[3, top] > P[4, top] and (P[4, unlikely] > P[3, unlikely]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_the_model_is_a_little_underconfident(full_runs, test_set, seed):
    """Exercise 4: mean confidence equals the accuracy at a T between 0.7 and 1."""
    _, net, _ = full_runs[seed]
    with torch.no_grad():
        logits = net(test_set.X)
    accuracy = (logits.argmax(dim=1) == test_set.y).float().mean().item()
    confidence = {T: softmax(logits / T).max(dim=1).values.mean().item() for T in (0.7, 1.0)}
    assert confidence[0.7] > accuracy > confidence[1.0], (confidence, accuracy)


# --- 8. and 9. updates, not epochs; the playground ------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_against_updates_both_batch_sizes_follow_one_curve(seed):
    small = dict(loss=nn.CrossEntropyLoss(), num_train=SMALL, quick_test=True)
    h_256, _ = fit(**small, seed=seed, batch_size=256, num_epochs=10)
    h_1024, net = fit(**small, seed=seed, batch_size=1024, num_epochs=10)
    assert h_1024.train_loss[-1] > h_256.train_loss[-1] + 0.1
    more, _ = fit(**small, seed=seed, batch_size=1024, num_epochs=30, net=net)
    loss_1024 = h_1024.train_loss + more.train_loss
    gaps = np.array(h_256.train_loss) - np.interp((np.arange(10) + 0.5) * 20,
                                                  (np.arange(40) + 0.5) * 5, loss_1024)
    assert gaps[0] > 0.05 and np.abs(gaps[1:]).max() < 0.03, gaps
    assert abs(loss_1024[-1] - h_256.train_loss[-1]) < 0.03
    # the playground's defaults: four times the learning rate overshoots, and over the last
    # 3 epochs both losses average more than 0.1 above lr 0.1's (test loss on 1,000 images;
    # the chaotic lr 0.4 run moves with the thread count: the smallest gap seen was 0.15)
    played, _ = fit(**small, seed=seed, lr=0.4, batch_size=1024, num_epochs=10)
    assert played.train_loss[0] > math.log(10), played.train_loss
    for key in ("train_loss", "test_loss"):
        fast_3, slow_3 = np.mean(getattr(played, key)[-3:]), np.mean(getattr(h_1024, key)[-3:])
        assert fast_3 > slow_3 + 0.1, (key, getattr(played, key), getattr(h_1024, key))


@pytest.mark.parametrize("lr", [3.0, 5.0, 10.0])
@pytest.mark.parametrize("batch_size", [256, 1024])
def test_a_learning_rate_of_3_or_more_stops_in_the_first_epoch(lr, batch_size):
    """The playground's hint, for both batch sizes and every seed."""
    for seed in SEEDS:
        history, _ = fit(nn.CrossEntropyLoss(), seed, lr=lr, batch_size=batch_size,
                         num_epochs=2, num_train=SMALL, quick_test=True)
        assert history.diverged and not history.train_loss, (seed, history.message)
