"""The teaching claims of notebooks/01_activations.ipynb, checked with the helpers.

The from-scratch activations are repeated here (a few lines each) so the tests do not depend
on executing the notebook. Claims that involve random weights are checked over three seeds.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import load_fashion_mnist, network_health, set_seed, train

SEEDS = (0, 1, 2)
GRID = torch.arange(-600, 601) / 100      # -6 ... 6 in steps of 0.01, with 0.0 exactly


# --- the from-scratch functions and their hand-written derivatives (as in the notebook) ---

def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def sigmoid_grad(x):
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):
    e_pos, e_neg = torch.exp(x), torch.exp(-x)
    return (e_pos - e_neg) / (e_pos + e_neg)


def tanh_grad(x):
    return 1 - tanh(x) ** 2


def relu(x):
    return x.clamp(min=0)


def relu_grad(x):
    return (x > 0).to(x.dtype)


def leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x, negative_slope=0.01):
    return torch.where(x > 0, 1.0, negative_slope)


def prelu(x, weight):
    return torch.where(x > 0, x, weight * x)


def prelu_grads(x, weight):
    return torch.where(x > 0, 1.0, weight), torch.where(x > 0, 0.0, x)


def softplus(x):
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def elu(x, alpha=1.0):
    return torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def elu_grad(x, alpha=1.0):
    return torch.where(x > 0, 1.0, alpha * torch.exp(x))


def gelu(x):
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_grad(x):
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-x**2 / 2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


def silu(x):
    return x * sigmoid(x)


def silu_grad(x):
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


CASES = {   # name: (ours, our derivative, PyTorch's function)
    "sigmoid": (sigmoid, sigmoid_grad, torch.sigmoid),
    "tanh": (tanh, tanh_grad, torch.tanh),
    "relu": (relu, relu_grad, torch.relu),
    "leaky_relu(0.01)": (leaky_relu, leaky_relu_grad, F.leaky_relu),
    "leaky_relu(0.2)": (lambda x: leaky_relu(x, 0.2), lambda x: leaky_relu_grad(x, 0.2),
                        lambda x: F.leaky_relu(x, 0.2)),
    "softplus": (softplus, sigmoid, F.softplus),
    "elu": (elu, elu_grad, F.elu),
    "gelu": (gelu, gelu_grad, F.gelu),
    "silu": (silu, silu_grad, F.silu),
}


@pytest.mark.parametrize("name", CASES)
def test_scratch_function_and_derivative_match_autograd(name):
    fn, fn_grad, torch_fn = CASES[name]
    x = GRID.clone().requires_grad_(True)
    y = torch_fn(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(fn(GRID), y.detach())
    torch.testing.assert_close(fn_grad(GRID), slope)


def test_prelu_derivatives_match_autograd():
    x = GRID.clone().requires_grad_(True)
    a = torch.tensor([0.25], requires_grad=True)
    F.prelu(x, a).sum().backward()
    d_x, d_a = prelu_grads(GRID, a.detach())
    torch.testing.assert_close(prelu(GRID, a.detach()), F.prelu(GRID, a.detach()))
    torch.testing.assert_close(d_x, x.grad)
    torch.testing.assert_close(d_a.sum().reshape(1), a.grad)


def test_relu_slope_at_zero_is_zero_in_pytorch():
    x = torch.zeros(1, requires_grad=True)
    torch.relu(x).backward()
    assert x.grad.item() == 0.0


def test_step_gives_no_gradient():
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    assert not (x > 0).to(x.dtype).requires_grad


def test_sigmoid_derivative_is_at_most_a_quarter():
    x = torch.arange(-200_000, 200_001, dtype=torch.float64) / 10_000    # dense, with 0.0
    slopes = sigmoid_grad(x)
    assert slopes.max() <= 0.25                        # everywhere on the grid
    assert x[slopes.argmax()] == 0                     # the maximum sits at 0 ...
    assert sigmoid_grad(torch.zeros((), dtype=torch.float64)) == 0.25   # ... and equals 1/4
    assert (slopes[x != 0] < 0.25).all()               # strictly below it anywhere else


def test_tanh_is_a_rescaled_sigmoid():
    x = torch.linspace(-30, 30, 60_001, dtype=torch.float64)
    torch.testing.assert_close(torch.tanh(x), 2 * torch.sigmoid(2 * x) - 1)
    torch.testing.assert_close(tanh(x), 2 * sigmoid(2 * x) - 1)
    torch.testing.assert_close(tanh_grad(x), 4 * sigmoid_grad(2 * x))


def test_softplus_derivative_is_sigmoid():
    x = torch.linspace(-30, 30, 60_001, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(softplus(x).sum(), x)
    torch.testing.assert_close(slope, sigmoid(x.detach()))
    (slope,) = torch.autograd.grad(F.softplus(x).sum(), x)
    torch.testing.assert_close(slope, torch.sigmoid(x.detach()))


def test_softplus_stays_within_log2_of_relu():
    x = torch.arange(-30_000, 30_001, dtype=torch.float64) / 1000
    gap = softplus(x) - relu(x)
    assert gap.min() > 0
    assert x[gap.argmax()] == 0 and math.isclose(gap.max().item(), math.log(2))


def test_gelu_and_silu_dip_below_zero():
    for fn in (gelu, silu):
        low = fn(GRID).min()
        assert -0.3 < low < 0


def test_gelu_and_silu_slopes_overshoot_one():
    x = GRID.double()
    for fn_grad in (gelu_grad, silu_grad):
        assert 1.05 < fn_grad(x).max() < 1.2
    # GELU's slope peaks exactly at sqrt(2), where gelu''(x) = pdf(x) (2 - x^2) vanishes
    assert abs(x[gelu_grad(x).argmax()] - math.sqrt(2)) < 0.01


# --- why nonlinearity ---

@pytest.mark.parametrize("seed", SEEDS)
def test_stacked_linear_layers_are_one_linear_layer(seed):
    set_seed(seed)
    stack = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3))
    (W1, b1), (W2, b2), (W3, b3) = [(layer.weight, layer.bias) for layer in stack]
    with torch.no_grad():
        W, b = W3 @ W2 @ W1, W3 @ (W2 @ b1 + b2) + b3
        X = torch.randn(100, 4)
        torch.testing.assert_close(stack(X), X @ W.T + b)


def fit_sine(activation, seed, steps=1000):
    x = torch.linspace(-3, 3, 200).unsqueeze(1)
    y = torch.sin(2 * x)
    set_seed(seed)
    net = nn.Sequential(nn.Linear(1, 64), activation(), nn.Linear(64, 64), activation(),
                        nn.Linear(64, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        loss = ((net(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    A = torch.cat([x, torch.ones_like(x)], dim=1)
    line_mse = ((A @ torch.linalg.lstsq(A, y).solution - y) ** 2).mean().item()
    return loss.item(), line_mse, y.var().item()


@pytest.mark.parametrize("seed", SEEDS)
def test_sine_fit_needs_an_activation(seed):
    linear_mse, line_mse, _ = fit_sine(nn.Identity, seed)
    relu_mse, _, variance = fit_sine(nn.ReLU, seed)
    assert math.isclose(linear_mse, line_mse, rel_tol=1e-3)   # no activation: the LS line
    assert relu_mse < 0.01 * variance                          # ReLU: over 99% explained


# --- saturation and dead units on one fixed batch ---

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": lambda: nn.LeakyReLU(0.1), "elu": nn.ELU, "gelu": nn.GELU,
               "silu": nn.SiLU}


def make_mlp(activation, hidden_layers=2, width=256):
    layers, fan_in = [nn.Flatten()], 784
    for _ in range(hidden_layers):
        layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 10))


def init_normal_(net):
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=1.0)
            nn.init.zeros_(layer.bias)


def pre_activations(net, X):
    zs, h = [], X
    with torch.no_grad():
        for layer in net:
            h = layer(h)
            if isinstance(layer, nn.Linear):
                zs.append(h)
    return zs[:-1]


def saturated_fraction(z, fn_grad):
    return (fn_grad(z) < 0.1 * fn_grad(torch.zeros(()))).float().mean().item()


def dead_fraction(z):
    return (z <= 0).all(dim=0).float().mean().item()


@pytest.fixture(scope="module")
def fixed_batch():
    _, test_iter = load_fashion_mnist(256)
    return next(iter(test_iter))


def measure(init, seed, X):
    result = {}
    for name, fn_grad in [("sigmoid", sigmoid_grad), ("tanh", tanh_grad), ("relu", None)]:
        set_seed(seed)
        net = make_mlp(name, hidden_layers=4)
        if init == "normal":
            init_normal_(net)
        zs = pre_activations(net, X)
        result[name] = [dead_fraction(z) if fn_grad is None else saturated_fraction(z, fn_grad)
                        for z in zs]
    return result


@pytest.mark.parametrize("seed", SEEDS)
def test_default_init_saturates_nothing_but_deep_relus_die(seed, fixed_batch):
    m = measure("default", seed, fixed_batch[0].cpu())
    assert max(m["sigmoid"] + m["tanh"]) < 0.01
    assert m["relu"][0] < 0.10 and m["relu"][-1] > 0.20


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_init_saturates_sigmoid_and_tanh_not_relu(seed, fixed_batch):
    m = measure("normal", seed, fixed_batch[0].cpu())
    assert min(m["sigmoid"] + m["tanh"]) > 0.5
    assert max(m["relu"]) < 0.10


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_dead_relus_are_set_by_their_bias(seed, fixed_batch):
    X = fixed_batch[0].cpu()
    set_seed(seed)
    net = make_mlp("relu", hidden_layers=4)
    hidden = [layer for layer in net if isinstance(layer, nn.Linear)][:-1]
    zs = pre_activations(net, X)
    variation = [z.std(dim=0).mean().item() for z in zs]
    bias_spread = [layer.bias.detach().std().item() for layer in hidden]
    assert variation[0] > bias_spread[0] and variation[-1] < bias_spread[-1]
    dead = (zs[-1] <= 0).all(dim=0)
    assert dead[hidden[-1].bias.detach() < 0].sum() >= 0.8 * dead.sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_relu_inputs_sit_where_the_smooth_family_has_slope(seed, fixed_batch):
    set_seed(seed)
    z = pre_activations(make_mlp("relu", hidden_layers=4), fixed_batch[0].cpu())[-1]
    lowest = z[:, (z <= 0).all(dim=0)].min()
    assert lowest > -1       # on [-1, 0] every slope below rises with z: its minimum is here
    for slope in (leaky_relu_grad(lowest, 0.1), elu_grad(lowest), gelu_grad(lowest),
                  silu_grad(lowest)):
        assert slope >= 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_gradient_shrinks_towards_the_first_layer(seed, fixed_batch):
    X, y = (t.cpu() for t in fixed_batch)
    set_seed(seed)
    health = network_health(make_mlp("relu", hidden_layers=4), X, y)
    grad_std = [s.grad_std for s in health if s.name == "ReLU"]
    assert grad_std[0] < grad_std[-1] / 5


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_starves_the_first_layer(seed, fixed_batch):
    X, y = (t.cpu() for t in fixed_batch)
    first_layer_grad = {}
    for name in ("sigmoid", "tanh", "relu"):
        set_seed(seed)
        net = make_mlp(name, hidden_layers=2)
        nn.CrossEntropyLoss()(net(X), y).backward()
        first_layer_grad[name] = net[1].weight.grad.norm().item()
    for other in ("tanh", "relu"):
        assert first_layer_grad["sigmoid"] < first_layer_grad[other] / 4


# --- training: same seed, same budget ---

@pytest.fixture(scope="module")
def small_data():
    return load_fashion_mnist(64, num_train=10_000)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_trains_slowest_and_tanh_elu_start_fastest(seed, small_data):
    train_iter, test_iter = small_data
    histories = {}
    for name in ACTIVATIONS:
        set_seed(seed)
        net = make_mlp(name, hidden_layers=2)
        histories[name] = train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 4,
                                torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
    final_loss = {name: h.train_loss[-1] for name, h in histories.items()}
    assert max(final_loss, key=final_loss.get) == "sigmoid"
    assert histories["sigmoid"].test_acc[0] < 0.2
    assert all(h.test_acc[0] > 0.5 for name, h in histories.items() if name != "sigmoid")
    first_loss = {name: h.train_loss[0] for name, h in histories.items()}
    assert set(sorted(first_loss, key=first_loss.get)[:2]) == {"tanh", "elu"}
    # test accuracy wobbles by several points between epochs, while training loss falls
    drops = [a - b for name, h in histories.items() if name != "sigmoid"
             for a, b in zip(h.test_acc, h.test_acc[1:])]
    assert max(drops) > 0.02
    assert all(a > b for h in histories.values() for a, b in zip(h.train_loss, h.train_loss[1:]))


@pytest.mark.parametrize("seed", SEEDS)
def test_prelu_slopes_are_learned_and_rise(seed, small_data):
    train_iter, test_iter = small_data
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.PReLU(),
                        nn.Linear(256, 256), nn.PReLU(), nn.Linear(256, 10))
    train(net, train_iter, test_iter, nn.CrossEntropyLoss(), 3,
          torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
    slopes = [layer.weight.item() for layer in net if isinstance(layer, nn.PReLU)]
    assert all(slope > 0.25 + 0.25 for slope in slopes)
