"""The teaching claims of notebooks/01_activations.ipynb, checked with the helpers.

The from-scratch activations are repeated here (a few lines each) so the tests do not depend
on executing the notebook. Claims that involve random weights are checked over three seeds.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from helpers import set_seed

SEEDS = (0, 1, 2)
GRID = torch.arange(-600, 601) / 100      # -6 ... 6 in steps of 0.01, with 0.0 exactly


# --- the from-scratch functions and their hand-written derivatives (as in the notebook) ---

def step(x):
    return (x > 0).to(x.dtype)


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


def leaky_relu(x, a=0.01):
    return torch.where(x > 0, x, a * x)


def leaky_relu_grad(x, a=0.01):
    return torch.where(x > 0, 1.0, a)


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


def check(fn, fn_grad, torch_fn):
    x = GRID.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(torch_fn(x).sum(), x)
    assert_close(fn(GRID), torch_fn(GRID))
    assert_close(fn_grad(GRID), slope)


@pytest.mark.parametrize("name", CASES)
def test_scratch_function_and_derivative_match_autograd(name):
    check(*CASES[name])


def test_relu_slope_at_zero_is_zero_in_pytorch():
    x = torch.zeros(1, requires_grad=True)
    torch.relu(x).backward()
    assert x.grad.item() == 0.0 and relu_grad(torch.zeros(1)).item() == 0.0


def test_step_gives_no_gradient():
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    assert not step(x).requires_grad
    assert ((step(x + 1e-3) - step(x - 1e-3)) / 2e-3 == 0).all()


def test_sigmoid_derivative_is_at_most_a_quarter_with_the_peak_at_zero():
    x = torch.arange(-200_000, 200_001, dtype=torch.float64) / 10_000
    slopes = sigmoid_grad(x)
    assert slopes.max() == 0.25 and x[slopes.argmax()] == 0
    assert (slopes[x != 0] < 0.25).all()


def test_tanh_is_a_rescaled_sigmoid_with_slope_at_most_one():
    x = torch.arange(-20_000, 20_001, dtype=torch.float64) / 1000
    assert_close(tanh(x), 2 * sigmoid(2 * x) - 1)
    assert_close(torch.tanh(x), 2 * torch.sigmoid(2 * x) - 1)
    assert_close(tanh_grad(x), 4 * sigmoid_grad(2 * x))
    assert tanh_grad(x).max() == 1 and x[tanh_grad(x).argmax()] == 0


def test_literal_softplus_overflows_and_ours_does_not():
    big = torch.tensor([89.0])
    assert torch.isinf(torch.log(1 + torch.exp(big)))
    assert softplus(big) == 89


def test_gelu_and_silu_are_not_monotonic_and_their_slope_peaks_above_one():
    for fn, fn_grad, low, peak in ((gelu, gelu_grad, -0.170, 1.129),
                                   (silu, silu_grad, -0.278, 1.100)):
        values, slopes = fn(GRID), fn_grad(GRID)
        assert -0.3 < values.min() < -0.1 and abs(values.min() - low) < 0.001
        assert values[0] > values.min() and slopes.min() < 0     # down below 0, then back up
        assert 1.05 < slopes.max() < 1.2 and abs(slopes.max() - peak) < 0.001
    assert abs(GRID[gelu_grad(GRID).argmax()] - math.sqrt(2)) < 0.01


def test_the_activations_before_gelu_and_silu_are_monotonic():
    for fn_grad in (sigmoid_grad, tanh_grad, relu_grad, leaky_relu_grad, sigmoid, elu_grad):
        assert (fn_grad(GRID) >= 0).all()          # sigmoid: softplus's derivative


def test_the_slope_table():
    points = torch.tensor([-5.0, -2.0, 0.0, 2.0, 5.0])
    assert sigmoid_grad(points)[[0, 4]].max() < 0.01
    assert tanh_grad(points)[[0, 4]].max() < 0.01
    assert sigmoid(points[0]) < 0.01 and elu_grad(points[0]) < 0.01   # softplus' = sigmoid
    assert gelu_grad(points)[:2].max() < 0 and silu_grad(points)[:2].max() < 0


# --- the playground: inputs spread like a normal distribution, as drawn ---

Z = torch.special.ndtri((torch.arange(20_000) + 0.5) / 20_000)   # mean 0, std 1


def test_playground_tanh_at_spread_three():
    slopes = tanh_grad(3.0 * Z)
    assert abs(slopes.mean() - 0.25) < 0.01                                  # the sigmoid's peak
    assert 0.25 < (slopes < 0.01).float().mean() < 0.4                      # about a third


def test_playground_relu_mean_slope_is_one_half_at_every_spread():
    for spread in (0.1, 0.25, 1.0, 3.0, 5.0, 10.0):
        assert abs(relu_grad(spread * Z).mean() - 0.5) < 0.01
    assert abs(Z.mean()) < 1e-6 and abs(Z.std() - 1) < 0.01       # a standard normal


def test_playground_sigmoid_and_tanh_mean_slope_falls_as_the_inputs_spread():
    spreads = torch.linspace(0.25, 5, 20)
    for fn_grad in (sigmoid_grad, tanh_grad):
        means = torch.stack([fn_grad(s * Z).mean() for s in spreads])
        assert (means.diff() < 0).all()


# --- why a nonlinearity ---

@pytest.mark.parametrize("seed", SEEDS)
def test_stacked_linear_layers_are_one_linear_layer(seed):
    set_seed(seed)
    layers = [nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3)]
    X = torch.randn(100, 4)
    with torch.no_grad():
        out = X
        for layer in layers:
            out = layer(out)
        (W1, b1), (W2, b2), (W3, b3) = [(layer.weight.T, layer.bias) for layer in layers]
        assert_close(out, X @ (W1 @ W2 @ W3) + ((b1 @ W2 + b2) @ W3 + b3))   # row form, X W + b


X_SINE = torch.linspace(-math.pi, math.pi, 200).unsqueeze(1)
Y_SINE = torch.sin(X_SINE)


def fit_sine(activation, seed=0, lr=0.03, steps=500):
    set_seed(seed)
    hidden, output = nn.Linear(1, 32), nn.Linear(32, 1)

    def model(x):
        return output(activation(hidden(x)))

    optimizer = torch.optim.SGD([*hidden.parameters(), *output.parameters()], lr=lr)
    for _ in range(steps):
        loss = ((model(X_SINE) - Y_SINE) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, loss.item()


@functools.cache
def relu_loss(seed):
    return fit_sine(torch.relu, seed)[1]


@pytest.fixture(scope="module")
def best_line():
    A = torch.cat([X_SINE, torch.ones_like(X_SINE)], dim=1)
    return A @ torch.linalg.lstsq(A, Y_SINE).solution


@pytest.mark.parametrize("seed", SEEDS)
def test_sine_fit_needs_an_activation(seed, best_line):
    linear_model, _ = fit_sine(lambda h: h, seed)
    line_loss = ((best_line - Y_SINE) ** 2).mean().item()
    with torch.no_grad():
        assert_close(linear_model(X_SINE), best_line, atol=1e-3, rtol=0)   # it is that line
    assert relu_loss(seed) < line_loss / 10


@pytest.mark.parametrize("seed", SEEDS)
def test_exercise_4_tanh_beats_the_sigmoid_at_the_same_lr_and_centring_does_not(seed):
    _, sigmoid_loss = fit_sine(torch.sigmoid, seed)
    _, tanh_loss = fit_sine(lambda h: 2 * torch.sigmoid(2 * h) - 1, seed)   # = tanh, cheaper
    _, centred_loss = fit_sine(lambda h: torch.sigmoid(h) - 0.5, seed)
    assert tanh_loss < sigmoid_loss / 5
    assert 0.1 < sigmoid_loss < 0.2 and tanh_loss < 0.015        # "about 0.14 against 0.01"
    assert abs(centred_loss / sigmoid_loss - 1) < 0.1


# --- the exercises' other answers ---

def test_exercise_1_chain_rule():
    x = GRID.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(torch.sigmoid(x).sum(), x)
    chain_rule = torch.exp(-GRID) / (1 + torch.exp(-GRID)) ** 2
    assert_close(chain_rule, slope)
    assert_close(chain_rule, sigmoid(GRID) * (1 - sigmoid(GRID)))


def test_exercise_2_prelu_derivatives():
    x = GRID.clone().requires_grad_(True)
    a = torch.tensor([0.25], requires_grad=True)
    F.prelu(x, a).sum().backward()
    assert_close(torch.where(GRID > 0, 1.0, 0.25), x.grad)
    assert_close(torch.where(GRID > 0, 0.0, GRID).sum().reshape(1), a.grad)


def test_exercise_3_swish_limits():
    def swish(x, beta):
        return x * sigmoid(beta * x)

    def swish_grad(x, beta):
        s = sigmoid(beta * x)
        return s + beta * x * s * (1 - s)

    for beta in (0.5, 3.0):
        check(lambda x, b=beta: swish(x, b), lambda x, b=beta: swish_grad(x, b),
              lambda x, b=beta: x * torch.sigmoid(b * x))
    assert_close(swish(GRID, 0.0), GRID / 2)
    for beta in (10.0, 100.0):
        gap = (swish(GRID.double(), beta) - relu(GRID.double())).abs().max()
        assert 0.25 / beta < gap < 0.3 / beta
