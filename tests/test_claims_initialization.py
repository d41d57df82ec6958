"""Claims of notebook 06 (initialization, vanishing and exploding signals), over 3 seeds.

Each test builds deep MLPs on one Fashion-MNIST batch and measures them with
`helpers.network_health`; the thresholds are the ones the notebook states.
"""

import math

import pytest
import torch
from torch import nn

from helpers import load_fashion_mnist, network_health, set_seed

SEEDS = [0, 1, 2]
WIDTH = 256


def deep_mlp(depth, activation, init_std=None):
    """784 -> depth x (Linear(WIDTH), activation) -> 10.

    `init_std`: a number (weights N(0, std^2)), "kaiming" (N(0, 2/n_in)), or None for
    PyTorch's default; with a chosen std the biases start at zero.
    """
    layers, n_in = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, WIDTH), activation()]
        n_in = WIDTH
    layers.append(nn.Linear(n_in, 10))
    for layer in layers:
        if isinstance(layer, nn.Linear) and init_std is not None:
            std = math.sqrt(2 / layer.in_features) if init_std == "kaiming" else init_std
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def fixed_batch(seed, batch_size=256):
    train_iter, _ = load_fashion_mnist(batch_size)
    set_seed(seed)
    X, y = next(iter(train_iter))
    return X.cpu(), y.cpu()


def activation_stds(stats):
    return [s.std for s in stats if s.kind == "activation"]


@pytest.mark.parametrize("seed", SEEDS)
def test_kaiming_keeps_relu_activation_std_within_2x_over_20_layers(seed):
    X, y = fixed_batch(seed)
    set_seed(seed)
    stds = activation_stds(network_health(deep_mlp(20, nn.ReLU, "kaiming"), X))
    assert len(stds) == 20
    ratios = [s / stds[0] for s in stds]
    assert 0.5 <= min(ratios) and max(ratios) <= 2.0, ratios


@pytest.mark.parametrize("seed", SEEDS)
def test_small_normal_init_shrinks_relu_activations_100x_by_layer_10(seed):
    X, y = fixed_batch(seed)
    set_seed(seed)
    stds = activation_stds(network_health(deep_mlp(20, nn.ReLU, 0.01), X))
    assert stds[9] < stds[0] / 100, (stds[0], stds[9])


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_net_first_layer_gradient_is_over_10x_smaller_than_last(seed):
    X, y = fixed_batch(seed)
    set_seed(seed)
    stats = network_health(deep_mlp(10, nn.Sigmoid), X, y)    # PyTorch's default init
    grads = [s.weight_grad_std for s in stats if s.weight_grad_std is not None]
    assert len(grads) == 11
    assert grads[0] < grads[-1] / 10, (grads[0], grads[-1])


@pytest.mark.parametrize("seed", SEEDS)
def test_constant_init_keeps_hidden_units_identical_while_training(seed):
    train_iter, _ = load_fashion_mnist(128)
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    for layer in (net[1], net[3]):
        nn.init.constant_(layer.weight, 0.05)
        nn.init.zeros_(layer.bias)
    start = net[1].weight.detach().clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _, (X, y) in zip(range(20), train_iter):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X.cpu()), y.cpu()).backward()
        optimizer.step()
    W1, W2 = net[1].weight.detach(), net[3].weight.detach()
    assert (W1 - start).abs().max() > 0.01                      # training did move them
    # every hidden unit: the same incoming weights, bias and outgoing weights
    torch.testing.assert_close(W1, W1[:1].expand_as(W1), rtol=0, atol=1e-6)
    torch.testing.assert_close(net[1].bias, net[1].bias[:1].expand(32), rtol=0, atol=1e-6)
    torch.testing.assert_close(W2, W2[:, :1].expand_as(W2), rtol=0, atol=1e-6)
