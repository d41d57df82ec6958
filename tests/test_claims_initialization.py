"""Claims of notebook 08 (initialization), re-checked over 3 seeds.

The deep MLPs are measured with `helpers.network_health` on the notebook's fixed batch (the
first 256 training images); the seed sets the weights (and, in training, the batch order).
The thresholds are the ones the notebook states.
"""

import math

import pytest
import torch
from torch import nn

from helpers import network_health, set_seed, train

SEEDS = [0, 1, 2]
ACTIVATIONS = {"ReLU": nn.ReLU, "tanh": nn.Tanh}


def init_std(scheme, n_in, n_out):
    return {"Kaiming": math.sqrt(2 / n_in), "Xavier": math.sqrt(2 / (n_in + n_out)),
            "N(0, 1)": 1.0, "N(0, 0.01²)": 0.01, "PyTorch default": None}[scheme]


def init_mlp(depth, activation="ReLU", init="PyTorch default", gain=1.0, width=256):
    """As in the notebook: `init` picks the weights' std (biases 0), `gain` multiplies it."""
    layers, n_in = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    net = nn.Sequential(*layers, nn.Linear(n_in, 10))
    for layer in net:
        if isinstance(layer, nn.Linear) and init != "PyTorch default":
            nn.init.normal_(layer.weight, std=gain * init_std(init, *layer.weight.shape[::-1]))
            nn.init.zeros_(layer.bias)
    return net


def layers(seed, X, y, *args, **kwargs):
    set_seed(seed)
    return [s for s in network_health(init_mlp(*args, **kwargs), X, y) if s.kind == "activation"]


def spread(values):
    return max(values) / min(values)


def cosine_similarity(h):
    u = nn.functional.normalize(h.reshape(len(h), -1).double(), dim=1)
    n = len(u)
    return ((u @ u.T).sum().item() - n) / (n * (n - 1))


def twenty_steps(constant, seed, train_iter):
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    if constant:
        for layer in (net[1], net[3]):
            nn.init.constant_(layer.weight, 0.05)
            nn.init.zeros_(layer.bias)
    start = net[1].weight.detach().clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _, (X, y) in zip(range(20), train_iter):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        optimizer.step()
    return net, net[1].weight.detach() - start


@pytest.mark.parametrize("seed", SEEDS)
def test_equal_starting_weights_stay_equal_and_random_ones_do_not(seed, data):
    train_iter = data[0]
    net, change = twenty_steps(True, seed, train_iter)
    assert change.abs().max() > 0.01                               # training did move them
    W1, b1, W2 = net[1].weight.detach(), net[1].bias.detach(), net[3].weight.detach()
    torch.testing.assert_close(W1, W1[:1].expand_as(W1), rtol=0, atol=1e-6)
    torch.testing.assert_close(b1, b1[:1].expand_as(b1), rtol=0, atol=1e-6)
    torch.testing.assert_close(W2, W2[:, :1].expand_as(W2), rtol=0, atol=1e-6)
    _, change = twenty_steps(False, seed, train_iter)
    assert (change - change[0]).abs().max() > 0.01                 # each unit its own change


@pytest.mark.parametrize("seed", SEEDS)
def test_variance_propagation_forward_relu_and_backward(seed):
    set_seed(seed)
    x = torch.randn(4000, 256)
    z = x @ (torch.randn(256, 512) / math.sqrt(256))
    g_in = torch.randn(4000, 512) @ (torch.randn(256, 512) / math.sqrt(512)).T
    assert abs(z.var() - 1) < 0.05 and abs((z.relu() ** 2).mean() - z.var() / 2) < 0.02
    assert abs(g_in.var() - 1) < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_nn_init_std_matches_the_formulas(seed):
    set_seed(seed)
    W = torch.empty(256, 784)
    xavier, kaiming = math.sqrt(2 / (784 + 256)), math.sqrt(2 / 784)
    checks = [(nn.init.xavier_normal_(W).std().item(), xavier),
              (nn.init.xavier_uniform_(W).std().item(), xavier),
              (nn.init.kaiming_normal_(W, nonlinearity="relu").std().item(), kaiming),
              (nn.init.kaiming_uniform_(W, nonlinearity="relu").std().item(), kaiming),
              (nn.Linear(784, 256).weight.std().item(), 1 / math.sqrt(3 * 784))]
    for theirs, ours in checks:
        torch.testing.assert_close(theirs, ours, rtol=0.01, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_twenty_layers_forward_and_backward(seed, data):
    _, _, X, y = data

    def measured(*args, **kwargs):
        acts = layers(seed, X, y, 20, *args, **kwargs)
        return [s.std for s in acts], [s.grad_std for s in acts]

    assert max(map(spread, measured("ReLU", "Kaiming"))) < 2
    assert all(300 < spread(v) < 3000 for v in measured("ReLU", "Xavier"))   # 2^9.5 = 724
    assert spread(measured("ReLU", "PyTorch default")[1]) > 1e6
    assert 2 < spread(measured("tanh", "Xavier")[0]) < 5              # a slow drift
    stds, grads = measured("tanh", "Xavier", gain=5 / 3)
    assert spread(stds) < 1.5 and 4 < grads[0] / grads[-1] < 10      # "about 6 times"


@pytest.mark.parametrize("seed", SEEDS)
def test_pytorch_default_deep_relu_net_forgets_its_input(seed, data):
    _, _, X, _ = data
    default = layers(seed, X, None, 20, "ReLU")
    outputs = [s.output.double() for s in default[:10]]
    between = [h.std(dim=0).mean().item() for h in outputs]
    assert cosine_similarity(default[9].output) > 0.9999             # 0.999999 at layer 10
    assert 0.3 < (between[-1] / between[0]) ** (1 / 9) < 0.5           # about 0.41
    assert cosine_similarity(layers(seed, X, None, 20, "ReLU", "Kaiming")[-1].output) < 0.99
    xavier_tanh = layers(seed, X, None, 20, "tanh", "Xavier")
    assert max(cosine_similarity(s.output) for s in xavier_tanh) < 0.8


@pytest.mark.parametrize("seed", SEEDS)
def test_schemes_in_training(seed, data):
    train_iter, test_small, _, _ = data
    final, runs = {}, {}
    for label, (activation, init) in {"Kaiming": ("ReLU", "Kaiming"),
                                      "Xavier tanh": ("tanh", "Xavier"),
                                      "Xavier ReLU": ("ReLU", "Xavier"),
                                      "default": ("ReLU", "PyTorch default")}.items():
        set_seed(seed)
        net = init_mlp(10, activation, init, width=64)
        runs[label] = train(net, train_iter, test_small, nn.CrossEntropyLoss(), 3,
                            torch.optim.SGD(net.parameters(), lr=0.03), plot=False)
        final[label] = runs[label].train_loss[-1]
    assert max(final["Kaiming"], final["Xavier tanh"]) < 0.85
    assert final["Xavier tanh"] < final["Kaiming"]
    assert final["Xavier ReLU"] > final["Kaiming"] + 0.3
    assert runs["default"].stalled and final["default"] > 2.29
    # the playground's default: PyTorch's default at depth 3 learns, far slower than Kaiming
    set_seed(seed)
    net = init_mlp(3, "ReLU", width=64)
    shallow = train(net, train_iter, test_small, nn.CrossEntropyLoss(), 3,
                    torch.optim.SGD(net.parameters(), lr=0.03), plot=False).train_loss
    assert all(a > b for a, b in zip(shallow, shallow[1:]))
    assert final["Kaiming"] + 0.3 < shallow[-1] < 2


@pytest.mark.parametrize("seed", SEEDS)
def test_first_loss(seed, data):
    _, _, X, y = data

    def first_loss(depth, activation, init):
        set_seed(seed)
        with torch.no_grad():
            return nn.functional.cross_entropy(init_mlp(depth, activation, init)(X), y).item()

    for depth, activation, init in [(2, "ReLU", "PyTorch default"), (10, "ReLU", "Kaiming"),
                                    (10, "tanh", "Xavier")]:
        assert abs(first_loss(depth, activation, init) - math.log(10)) < 0.2
    assert 15 < first_loss(10, "tanh", "N(0, 1)") < 40
    assert first_loss(2, "ReLU", "N(0, 1)") > 1000
    # the blind spot: PyTorch's default at depth 10 starts at ln 10, yet its images look
    # alike by layer 10 (test_pytorch_default_deep_relu_net_forgets_its_input) and it never
    # trains (test_schemes_in_training)
    assert abs(first_loss(10, "ReLU", "PyTorch default") - math.log(10)) < 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_exercises(seed, data):
    train_iter, _, X, y = data
    # 1: an all-zero tanh network: only the output bias moves
    set_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10))
    for p in net.parameters():
        nn.init.zeros_(p)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _, (X_batch, y_batch) in zip(range(20), train_iter):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(X_batch), y_batch).backward()
        optimizer.step()
    moved = {name: p.abs().max().item() for name, p in net.named_parameters()}
    assert moved["3.bias"] > 0.01
    assert max(moved["1.weight"], moved["1.bias"], moved["3.weight"]) == 0
    # 2: the leaky ReLU gain
    z = torch.randn(1_000_000)
    for a in (0.01, 0.1, 0.2):
        assert abs(nn.functional.leaky_relu(z, a).pow(2).mean() - (1 + a**2) / 2) < 0.005
        torch.testing.assert_close(math.sqrt(2 / (1 + a**2)),
                                   nn.init.calculate_gain("leaky_relu", a))
    # 3: tanh gains
    results = {}
    for gain in (1, 1.2, 5 / 3, 3):
        acts = layers(seed, X, y, 20, "tanh", "Xavier", gain)
        results[gain] = (spread([s.std for s in acts]), acts[0].grad_std / acts[-1].grad_std,
                         max(s.saturated for s in acts))
    assert results[1][0] > 2 and results[1.2][0] < 1.5 and results[5 / 3][0] < 1.5
    assert results[1.2][1] < 2 and results[5 / 3][1] > 4 and results[3][1] > 100
    assert results[3][2] > 0.3
    # 4: a last layer 10 times smaller starts at ln 10
    set_seed(seed)
    net = init_mlp(10, "ReLU", "Kaiming")
    with torch.no_grad():
        before = nn.functional.cross_entropy(net(X), y).item()
        net[-1].weight *= 0.1
        after = nn.functional.cross_entropy(net(X), y).item()
    assert abs(after - math.log(10)) < 0.02 < abs(before - math.log(10))
