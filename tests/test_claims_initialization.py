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


def deep_mlp(depth, activation, init_std=None, scale=1.0):
    """784 -> depth x (Linear(WIDTH), activation) -> 10.

    `init_std`: a number (weights N(0, std^2)), "kaiming" (N(0, 2/n_in)), or None for
    PyTorch's default; with a chosen std the biases start at zero. `scale` multiplies the
    chosen std.
    """
    layers, n_in = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, WIDTH), activation()]
        n_in = WIDTH
    layers.append(nn.Linear(n_in, 10))
    for layer in layers:
        if isinstance(layer, nn.Linear) and init_std is not None:
            std = math.sqrt(2 / layer.in_features) if init_std == "kaiming" else init_std
            nn.init.normal_(layer.weight, 0.0, std * scale)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def fixed_batch(seed, batch_size=256):
    train_iter, _ = load_fashion_mnist(batch_size)
    set_seed(seed)
    X, y = next(iter(train_iter))
    return X.cpu(), y.cpu()


def activation_stds(stats):
    return [s.std for s in stats if s.kind == "activation"]


def activations(stats):
    return [s for s in stats if s.kind == "activation"]


def cosine_similarity(h):
    """Mean cosine similarity between the rows of h (one row per image), over all pairs."""
    u = nn.functional.normalize(h.reshape(len(h), -1).double(), dim=1)
    n = len(u)
    return (((u @ u.T).sum() - n) / (n * (n - 1))).item()


def per_layer_factor(values):
    """Geometric-mean factor from one layer to the next."""
    return (values[-1] / values[0]) ** (1 / (len(values) - 1))


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


def deep_sigmoid_stats(seed):
    """Per-layer health of the notebook's 10-layer sigmoid MLP (PyTorch's default init)."""
    X, y = fixed_batch(seed)
    set_seed(seed)
    return network_health(deep_mlp(10, nn.Sigmoid), X, y)


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_net_first_layer_gradient_is_over_10x_smaller_than_last(seed):
    stats = deep_sigmoid_stats(seed)
    grads = [s.weight_grad_std for s in stats if s.weight_grad_std is not None]
    assert len(grads) == 11
    assert grads[0] < grads[-1] / 10, (grads[0], grads[-1])


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_net_grad_data_ratio_falls_hundreds_of_millions_about_7x_per_layer(seed):
    # the notebook: "about 7x per layer" (theory 4 * sqrt(3) = 6.9), "hundreds of millions"
    stats = deep_sigmoid_stats(seed)
    ratios = [s.grad_data_ratio for s in stats if s.grad_data_ratio is not None]
    assert ratios[0] < ratios[-1] / 1e8, (ratios[0], ratios[-1])
    factor = per_layer_factor([s.grad_std for s in activations(stats)])
    assert 5 < factor < 10, factor


@pytest.mark.parametrize("seed", SEEDS)
def test_saturated_tanh_net_still_explodes_gradient_backwards(seed):
    X, y = fixed_batch(seed)
    set_seed(seed)
    acts = activations(network_health(deep_mlp(10, nn.Tanh, 1.0), X, y))
    assert min(s.saturated for s in acts) > 0.8
    assert acts[0].grad_std > 1000 * acts[-1].grad_std, (acts[0].grad_std, acts[-1].grad_std)


@pytest.mark.parametrize("seed", SEEDS)
def test_pytorch_default_deep_relu_net_forgets_the_input(seed):
    # at layer 10 each unit gives nearly the same value for every image
    X, y = fixed_batch(seed)
    set_seed(seed)
    outputs = [s.output.double() for s in activations(network_health(deep_mlp(10, nn.ReLU), X))]
    across_images = [h.std(dim=0).mean().item() for h in outputs]
    last = outputs[-1]
    assert across_images[-1] < last.std().item() / 100, (across_images[-1], last.std())
    assert 0.3 < per_layer_factor(across_images) < 0.5       # theory: sqrt(1/3 * 1/2) = 0.41
    assert cosine_similarity(last) > 0.999


@pytest.mark.parametrize("seed", SEEDS)
def test_kaiming_relu_images_look_more_alike_with_depth(seed):
    X, y = fixed_batch(seed)
    set_seed(seed)
    acts = activations(network_health(deep_mlp(20, nn.ReLU, "kaiming"), X))
    cosines = [cosine_similarity(s.output) for s in acts]
    assert cosines[-1] > cosines[0] + 0.1, cosines
    assert acts[-1].dead > acts[0].dead + 0.1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_scaled_kaiming_std_ratio_over_40_layers_is_about_scale_to_the_39(seed, scale):
    # exercise 2's hint: last layer / first layer is about scale ** 39
    X, y = fixed_batch(seed)
    set_seed(seed)
    stds = activation_stds(network_health(deep_mlp(40, nn.ReLU, "kaiming", scale), X))
    ratio = stds[-1] / stds[0]
    assert scale ** 39 / 2 < ratio < scale ** 39 * 2, (ratio, scale ** 39)


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


@pytest.mark.parametrize("seed", SEEDS)
def test_random_init_gives_each_hidden_unit_its_own_change(seed):
    train_iter, _ = load_fashion_mnist(128)
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    start = net[1].weight.detach().clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _, (X, y) in zip(range(20), train_iter):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X.cpu()), y.cpu()).backward()
        optimizer.step()
    change = net[1].weight.detach() - start
    assert (change - change[0]).abs().max() > 0.01
