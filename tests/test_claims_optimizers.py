"""The teaching claims of notebooks/10_optimizers.ipynb, checked with the helpers.

The notebook's from-scratch optimizers are repeated here (a few lines each), so the tests do
not depend on executing it. The 2-D surfaces and the weight-decay toy have no randomness and
are checked once. The checks against `torch.optim` run for seeds 0, 1 and 2 (each seed its
own starting weights and batches). The Fashion-MNIST experiments are the notebook's own: its
learning-rate sweep and its schedules already run seeds 0, 1 and 2 and make their claims
about every seed or about the median over them; the Adam / AdamW comparison, made on seed 0
in the notebook, is re-checked on all three seeds, and so is the playground's default run
(seed 0 in the notebook).
"""

import contextlib
import io
import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler
from torch.testing import assert_close

from helpers import load_fashion_mnist, set_seed, train

SEEDS = [0, 1, 2]
INF = float("inf")


# --- the notebook's from-scratch optimizers --------------------------------------------------

class SGD:
    def __init__(self, params, lr, weight_decay=0.0):
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay
        self.state = [{} for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p, state in zip(self.params, self.state):
            self.update(p, p.grad + self.weight_decay * p, state)

    def update(self, p, g, state):
        p -= self.lr * g


class Momentum(SGD):
    def __init__(self, params, lr, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, p, g, state):
        v = state["v"] = self.momentum * state.get("v", 0) + g
        p -= self.lr * (g + self.momentum * v if self.nesterov else v)


class MomentumLrInside(Momentum):
    def update(self, p, g, state):
        v = state["v"] = self.momentum * state.get("v", 0) + self.lr * g
        p -= v


class Adagrad(SGD):
    def __init__(self, params, lr=0.01, eps=1e-10, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = eps

    def update(self, p, g, state):
        s = state["s"] = state.get("s", 0) + g * g
        p -= self.lr * g / (s.sqrt() + self.eps)


class RMSprop(SGD):
    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.alpha, self.eps = alpha, eps

    def update(self, p, g, state):
        v = state["v"] = self.alpha * state.get("v", 0) + (1 - self.alpha) * g * g
        p -= self.lr * g / self.denominator(v)

    def denominator(self, v):
        return v.sqrt() + self.eps


class RMSpropEpsInside(RMSprop):
    def denominator(self, v):
        return (v + self.eps).sqrt()


class Adam(SGD):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, p, g, state):
        b1, b2 = self.betas
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
        p -= self.lr * (m / (1 - b1**t)) / self.denominator(v / (1 - b2**t))

    denominator = RMSprop.denominator


class AdamEpsInside(Adam):
    denominator = RMSpropEpsInside.denominator


class AdamW(Adam):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps)
        self.decay = weight_decay

    def update(self, p, g, state):
        p *= 1 - self.lr * self.decay
        super().update(p, g, state)


OPTIMIZERS = {
    "SGD": lambda ps, lr, mom, wd: SGD(ps, lr, wd),
    "momentum": lambda ps, lr, mom, wd: Momentum(ps, lr, mom, weight_decay=wd),
    "Nesterov": lambda ps, lr, mom, wd: Momentum(ps, lr, mom, True, wd),
    "Adagrad": lambda ps, lr, mom, wd: Adagrad(ps, lr, weight_decay=wd),
    "RMSprop": lambda ps, lr, mom, wd: RMSprop(ps, lr, weight_decay=wd),
    "Adam": lambda ps, lr, mom, wd: Adam(ps, lr, (mom, 0.999), weight_decay=wd),
    "AdamW": lambda ps, lr, mom, wd: AdamW(ps, lr, (mom, 0.999), weight_decay=wd),
}


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


# --- section 1: why SGD struggles (no randomness) --------------------------------------------

def quadratic(p):
    return 0.5 * (p[0] ** 2 + 20 * p[1] ** 2)


def rosenbrock(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def path(optimizer_class, f, start, steps, **settings):
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer, points = optimizer_class([p], **settings), [start]
    for _ in range(steps):
        optimizer.zero_grad()
        f(p).backward()
        optimizer.step()
        points.append(p.tolist())
    return torch.tensor(points, dtype=torch.float64)


START = [-4.5, 1.5]


def test_sgd_on_the_quadratic_converges_below_2_over_lambda_max_and_diverges_above():
    assert quadratic(path(SGD, quadratic, START, 200, lr=0.099)[-1]) < 0.01
    assert quadratic(path(SGD, quadratic, START, 200, lr=0.101)[-1]) > 1000


def test_rosenbrock_curvatures_and_the_learning_rate_limit_near_its_minimum():
    minimum = torch.tensor([1.0, 1.0], dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(rosenbrock, minimum)
    curvatures, directions = torch.linalg.eigh(hessian)
    assert abs(curvatures[0] - 0.40) < 0.005 and abs(curvatures[1] - 1001.6) < 0.05
    near = (minimum + 0.001 * directions[:, -1]).tolist()
    distance = [(path(SGD, rosenbrock, near, 500, lr=k * 2 / curvatures[-1])[-1] - minimum).norm()
                for k in (0.99, 1.01)]
    assert distance[0] < 1e-4 and distance[1] > 0.01


SURFACES = {
    "quadratic": (quadratic, START, 30, dict(SGD=0.09, momentum=0.03, Nesterov=0.03,
                                             Adagrad=1.0, RMSprop=0.1, Adam=0.3)),
    "Rosenbrock": (rosenbrock, [-1.2, 1.0], 300, dict(SGD=0.0015, momentum=0.001,
                                                      Nesterov=0.001, Adagrad=1.0,
                                                      RMSprop=0.03, Adam=0.3)),
}


def test_the_paths_sgd_zigzags_and_crawls_the_others_do_better():
    paths = {(surface, name): path(OPTIMIZERS[name], f, start, steps, lr=lr, mom=0.9, wd=0.0)
             for surface, (f, start, steps, lrs) in SURFACES.items() for name, lr in lrs.items()}
    end = {key: SURFACES[key[0]][0](points[-1]).item() for key, points in paths.items()}
    assert end["Rosenbrock", "SGD"] > 1 and paths["Rosenbrock", "SGD"][-1, 0] < 0
    assert max(end["Rosenbrock", n] for n in ("momentum", "Nesterov", "Adam")) < 0.05
    flips = {n: int((p[1:, 1] * p[:-1, 1] < 0).sum()) for (s, n), p in paths.items()
             if s == "quadratic"}
    assert flips["SGD"] == 30 and flips["Adagrad"] == flips["RMSprop"] == 0
    assert min(paths["quadratic", n][:, 0].max() for n in ("momentum", "Nesterov", "Adam")) > 0.5
    assert end["quadratic", "Nesterov"] < end["quadratic", "momentum"] / 100
    for name in ("Adagrad", "RMSprop"):                    # "the curvature ratio stops mattering"
        assert end["quadratic", name] < end["quadratic", "SGD"] / 10
    # "RMSprop's path hides Adagrad's" on the quadratic: the two stay close all the way
    gap = (paths["quadratic", "RMSprop"] - paths["quadratic", "Adagrad"]).norm(dim=1)
    assert gap.max() < 0.25


def test_momentum_converges_where_sgd_diverges():
    f_momentum = quadratic(path(OPTIMIZERS["momentum"], quadratic, START, 40, lr=0.12, mom=0.5,
                                wd=0)[-1])
    f_sgd = quadratic(path(OPTIMIZERS["SGD"], quadratic, START, 40, lr=0.12, mom=0.5, wd=0)[-1])
    assert f_momentum < 1e-4 and f_sgd > 1e3


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
def test_exercise_2_momentum_is_stable_up_to_2_1_plus_mu_over_lambda_max(mu):
    f_start = quadratic(torch.tensor(START))
    limit = 2 * (1 + mu) / 20
    for factor in (0.98, 1.02):
        f_end = quadratic(path(OPTIMIZERS["momentum"], quadratic, START, 300, lr=factor * limit,
                               mom=mu, wd=0)[-1])
        assert f_end < f_start / 10 if factor < 1 else f_end > f_start * 10


# --- section 2: each optimizer equals torch.optim, step for step -----------------------------

@pytest.fixture(scope="module")
def check_batches():
    """Per seed: 20 batches of 64 images, in that seed's order."""
    batches = {}
    for seed in SEEDS:
        set_seed(seed)
        batches[seed] = list(load_fashion_mnist(64, device="cpu", num_train=20 * 64)[0])
    return batches


def twenty_steps(batches, seed, optimizer_class, settings, halve_lr_at=None, steps=20):
    set_seed(seed)
    net = mlp()
    optimizer = optimizer_class(net.parameters(), **settings)
    for i, (X, y) in enumerate(batches[:steps]):
        if i == halve_lr_at:
            for group in getattr(optimizer, "param_groups", [vars(optimizer)]):
                group["lr"] /= 2
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        optimizer.step()
    return [p.detach() for p in net.parameters()]


SAME = [  # (ours, theirs, halve_lr_at, settings): the notebook's checks
    (SGD, torch.optim.SGD, None, dict(lr=0.1, weight_decay=0.01)),
    (Momentum, torch.optim.SGD, None, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (Momentum, torch.optim.SGD, None, dict(lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=0.01)),
    (Momentum, torch.optim.SGD, 10, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (Momentum, torch.optim.SGD, 10, dict(lr=0.05, momentum=0.9, nesterov=True,
                                         weight_decay=0.01)),
    (MomentumLrInside, torch.optim.SGD, None, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (Adagrad, torch.optim.Adagrad, None, dict(lr=0.01, weight_decay=0.01)),
    (RMSprop, torch.optim.RMSprop, None, dict(lr=0.001, alpha=0.9, weight_decay=0.01)),
    (Adam, torch.optim.Adam, None, dict(lr=0.001, betas=(0.9, 0.99), weight_decay=0.01)),
    (AdamW, torch.optim.AdamW, None, dict(lr=0.001, weight_decay=0.1)),
]
DIFFERENT = [  # the other conventions
    (MomentumLrInside, torch.optim.SGD, 10, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (RMSpropEpsInside, torch.optim.RMSprop, None, dict(lr=0.001, alpha=0.9)),
    (AdamEpsInside, torch.optim.Adam, None, dict(lr=0.001)),
]


@pytest.fixture(scope="module")
def pytorch_runs(check_batches):
    """torch.optim's parameters after 20 steps, per (seed, check), computed once."""
    cache = {}

    def get(seed, theirs, settings, halve_lr_at):
        key = (seed, theirs, repr(settings), halve_lr_at)
        if key not in cache:
            cache[key] = twenty_steps(check_batches[seed], seed, theirs, settings, halve_lr_at)
        return cache[key]
    return get


@pytest.mark.parametrize("seed", SEEDS)
def test_each_scratch_optimizer_takes_torch_optims_steps(check_batches, pytorch_runs, seed):
    for ours, theirs, halve_lr_at, settings in SAME:
        for a, b in zip(twenty_steps(check_batches[seed], seed, ours, settings, halve_lr_at),
                        pytorch_runs(seed, theirs, settings, halve_lr_at)):
            assert_close(a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_other_conventions_fail_the_check(check_batches, pytorch_runs, seed):
    for ours, theirs, halve_lr_at, settings in DIFFERENT:
        pairs = zip(twenty_steps(check_batches[seed], seed, ours, settings, halve_lr_at),
                    pytorch_runs(seed, theirs, settings, halve_lr_at))
        assert max((a - b).abs().max().item() for a, b in pairs) > 1e-3, ours.__name__


@pytest.mark.parametrize("seed", SEEDS)
def test_first_steps_move_each_weight_by_lr_and_rmsprop_by_ten_lr(check_batches, seed):
    start = twenty_steps(check_batches[seed], seed, SGD, dict(lr=0.0), steps=1)
    for optimizer_class, expected in [(Adagrad, 1), (RMSprop, 10), (Adam, 1)]:
        after = twenty_steps(check_batches[seed], seed, optimizer_class, dict(lr=0.001), steps=1)
        moved = torch.cat([(a - b).abs().flatten() for a, b in zip(after, start)]) / 0.001
        assert abs(moved[moved > 0].median() - expected) < 0.001 * expected


@pytest.mark.parametrize("seed", SEEDS)
def test_exercise_1_amsgrad_equals_torch_optim(check_batches, seed):
    class AMSGrad(Adam):
        def update(self, p, g, state):
            b1, b2 = self.betas
            t = state["t"] = state.get("t", 0) + 1
            m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
            v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
            v_max = state["v_max"] = torch.maximum(state.get("v_max", v), v)
            p -= self.lr * (m / (1 - b1**t)) / self.denominator(v_max / (1 - b2**t))

    settings = dict(lr=0.001, weight_decay=0.01)
    ours = twenty_steps(check_batches[seed], seed, AMSGrad, settings)
    theirs = twenty_steps(check_batches[seed], seed, torch.optim.Adam, {**settings,
                                                                          "amsgrad": True})
    for a, b in zip(ours, theirs):
        assert_close(a, b)


# --- section 4: the learning-rate sweep on Fashion-MNIST -------------------------------------

class RecordingLoss(nn.CrossEntropyLoss):
    def forward(self, logits, y):
        loss = super().forward(logits, y)
        if torch.is_grad_enabled():
            self.values.append(loss.item())
        return loss


@pytest.fixture(scope="module")
def data():
    train_iter, test_iter = load_fashion_mnist(100, device="cpu", num_train=5_000)
    all_train, _ = load_fashion_mnist(100, device="cpu")
    return train_iter, test_iter, [(all_train.X[-2_000:], all_train.y[-2_000:])]


def run(data, name, lr, seed, mom=0.9, wd=0.0):
    train_iter, _, val_iter = data
    set_seed(seed)
    net, loss = mlp(), RecordingLoss()
    loss.values = []
    with contextlib.redirect_stdout(io.StringIO()):
        history = train(net, train_iter, val_iter, loss, 1,
                        OPTIMIZERS[name](net.parameters(), lr, mom, wd), plot=False)
    return INF if history.diverged else history.test_loss[-1], loss.values, net


GRIDS = {name: [10 ** (k / 2) for k in range(low, low + 5)]
         for name, low in [("SGD", -4), ("momentum", -5), ("Adagrad", -6), ("RMSprop", -8),
                           ("Adam", -6)]}


@pytest.fixture(scope="module")
def sweep(data):
    """The notebook's sweep: 5 optimizers x 5 learning rates x seeds 0, 1, 2, one epoch."""
    runs = {(name, lr, seed): run(data, name, lr, seed)
            for name, lrs in GRIDS.items() for lr in lrs for seed in SEEDS}
    losses = {(name, lr): [runs[name, lr, s][0] for s in SEEDS] for name, lr, _ in runs}
    median = {key: torch.tensor(values).median().item() for key, values in losses.items()}
    best = {name: min(lrs, key=lambda lr, name=name: median[name, lr])
            for name, lrs in GRIDS.items()}
    return runs, losses, median, best


def test_sweep_sgds_best_lr_is_over_10_times_adams_and_30_times_rmsprops(sweep):
    _, _, _, best = sweep
    assert best["SGD"] / best["Adam"] > 9.9 and best["SGD"] / best["RMSprop"] > 30


def test_sweep_adams_window_is_the_widest_and_sgds_half_a_decade(sweep):
    _, _, median, best = sweep
    window = {n: sum(median[n, lr] < median[n, best[n]] + 0.15 for lr in GRIDS[n])
              for n in GRIDS}
    assert window["Adam"] == max(window.values()) and window["Adam"] >= 4
    assert window["SGD"] <= 2


def test_sweep_adaptive_optimizers_diverge_within_a_decade_above_their_best(sweep):
    _, losses, _, best = sweep
    for name in ("Adagrad", "RMSprop", "Adam"):
        assert any(max(losses[name, lr]) == INF for lr in GRIDS[name]
                   if lr < 10.01 * best[name]), name
    assert min(losses["RMSprop", GRIDS["RMSprop"][-1]]) == INF     # PyTorch's default, 0.01


def test_at_their_best_the_others_pass_sgd_and_are_5_points_more_accurate(sweep, data):
    runs, _, _, best = sweep
    _, test_iter, _ = data
    with torch.no_grad():
        accuracy = {name: torch.tensor([(runs[name, lr, s][2](test_iter.X).argmax(1)
                                         == test_iter.y).float().mean() for s in SEEDS])
                    .median().item() for name, lr in best.items()}
    smooth = {name: torch.tensor([runs[name, lr, s][1] for s in SEEDS]).unfold(1, 5, 1).mean(-1)
              for name, lr in best.items()}
    for name in best:
        if name != "SGD":
            assert (smooth[name].median(0).values[15:] < smooth["SGD"].median(0).values[15:]).all()
            assert accuracy[name] > accuracy["SGD"] + 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_playground_adam_at_lr_001_keeps_training_while_the_test_loss_bounces(seed):
    """The playground's default run, tested on 2,000 test images (the notebook shows seed 0)."""
    train_iter, test_iter = load_fashion_mnist(100, device="cpu", num_train=5_000)
    set_seed(seed)
    net = mlp()
    test_2k = [(test_iter.X[:2_000], test_iter.y[:2_000])]
    history = train(net, train_iter, test_2k, nn.CrossEntropyLoss(), 8,
                    OPTIMIZERS["Adam"](net.parameters(), 0.01, 0.9, 0.0), plot=False)
    train_drop = history.train_loss[2] - history.train_loss[-1]
    assert train_drop > 0.1 and history.test_loss[2] - min(history.test_loss[3:]) < train_drop / 2
    assert all(0.4 < loss < 0.65 for loss in history.test_loss[2:])


# --- section 5: schedules --------------------------------------------------------------------

class Scheduled:
    def __init__(self, optimizer, scheduler):
        self.optimizer, self.scheduler = optimizer, scheduler
        self.zero_grad = optimizer.zero_grad

    def step(self):
        self.optimizer.step()
        self.scheduler.step()


SCHEDULES = {
    "constant": lambda opt: lr_scheduler.ConstantLR(opt, factor=1.0),
    "step decay": lambda opt: lr_scheduler.StepLR(opt, step_size=100, gamma=0.1),
    "cosine, warm-up": lambda opt: lr_scheduler.SequentialLR(opt, [
        lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=20),
        lr_scheduler.CosineAnnealingLR(opt, T_max=180)], milestones=[20]),
}


def test_both_schedules_end_below_the_constant_learning_rate_on_every_seed_and_median(data):
    train_iter, _, val_iter = data
    final, first_two = {}, {}
    for kind, make in SCHEDULES.items():
        for seed in SEEDS:
            set_seed(seed)
            net = mlp()
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
            history = train(net, train_iter, val_iter, nn.CrossEntropyLoss(), 4,
                            Scheduled(optimizer, make(optimizer)), plot=False)
            final[kind, seed] = history.test_loss[-1]
            first_two[kind, seed] = history.test_loss[:2]
    for kind in ("step decay", "cosine, warm-up"):
        gap = torch.tensor([final["constant", seed] - final[kind, seed] for seed in SEEDS])
        assert gap.min() > 0.01 and gap.median() > 0.03, kind
    for seed in SEEDS:   # step decay keeps the constant learning rate for 100 updates (2 epochs)
        assert_close(torch.tensor(first_two["step decay", seed]),
                     torch.tensor(first_two["constant", seed]), rtol=0, atol=1e-3)


def test_exercise_3_a_warm_up_rescues_rmsprop_at_its_default_learning_rate(data):
    train_iter, _, val_iter = data
    for warm in (False, True):
        for seed in SEEDS:
            set_seed(seed)
            net = mlp()
            optimizer = torch.optim.RMSprop(net.parameters(), lr=0.01)
            updater = (Scheduled(optimizer, lr_scheduler.LinearLR(optimizer, start_factor=0.01,
                                                                  total_iters=10))
                       if warm else optimizer)
            with contextlib.redirect_stdout(io.StringIO()):
                history = train(net, train_iter, val_iter, nn.CrossEntropyLoss(), 1, updater,
                                plot=False)
            if warm:
                assert not history.diverged and history.test_loss[-1] < 1.5
            else:
                assert history.diverged


# --- section 6: where weight decay meets Adam ------------------------------------------------

def test_a_weight_only_decay_moves_sgd_adamw_momentum_and_adam():
    def no_gradient(p):
        return 0 * p.sum()

    decays = {(name, wd): path(OPTIMIZERS[name], no_gradient, [1.0], 300, lr=0.01, mom=0.9,
                               wd=wd)[1:, 0]
              for name, wd in [("SGD", 0.1), ("momentum", 0.1), ("Adam", 0.1), ("Adam", 0.001),
                               ("AdamW", 0.1)]}
    steps = torch.arange(1.0, 301, dtype=torch.float64)
    assert_close(decays["SGD", 0.1], (1 - 0.01 * 0.1) ** steps)
    assert_close(decays["AdamW", 0.1], decays["SGD", 0.1])
    shrink = 1 - decays["momentum", 0.1][-1] / decays["momentum", 0.1][-2]
    assert 8 < shrink / (0.01 * 0.1) < 12
    assert abs(decays["Adam", 0.1][9] - (1 - 10 * 0.01)) < 0.005
    assert_close(decays["Adam", 0.001], decays["Adam", 0.1], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_adams_weight_decay_removes_a_third_of_the_first_layer_adamws_shrinks_all_alike(
        sweep, data, seed):
    lr = GRIDS["Adam"][0]
    W0 = sweep[0]["Adam", lr, seed][2][1].weight.detach()          # no decay: from the sweep
    W = {name: run(data, name, lr, seed, wd=0.01)[2][1].weight.detach()
         for name in ("Adam", "AdamW")}
    ratio = {name: (w.norm() / W0.norm()).item() for name, w in W.items()}
    per_pixel = {name: w.norm(dim=0) / W0.norm(dim=0) for name, w in W.items()}
    assert 0.6 < ratio["Adam"] < 0.72 and per_pixel["Adam"].min() < 0.1
    assert abs(ratio["AdamW"] - (1 - lr * 0.01) ** 50) < 2e-4
    assert ((per_pixel["AdamW"] - 1).abs() < 0.005).all()
    assert math.isclose((1 - lr * 0.01) ** 50, 0.9995, abs_tol=1e-4)
