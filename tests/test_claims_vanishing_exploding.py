"""Claims of notebook 07 (vanishing and exploding gradients), re-checked over 3 seeds.

The networks are measured with `helpers.network_health` on the notebook's fixed batch (the
first 256 training images); the seed sets the weights (and, in training, the batch order).
The thresholds are the ones the notebook states.
"""

import math

import pytest
import torch
from torch import nn

from helpers import load_fashion_mnist, network_health, set_seed, train

SEEDS = [0, 1, 2]
ACTIVATIONS = {"ReLU": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "GELU": nn.GELU}


def deep_mlp(depth, activation="ReLU", std=None, width=256):
    """As in the notebook: std=None keeps PyTorch's default, a number gives N(0, std^2), b = 0."""
    layers, n_in = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    net = nn.Sequential(*layers, nn.Linear(n_in, 10))
    for layer in net:
        if isinstance(layer, nn.Linear) and std is not None:
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)
    return net


def health(seed, X, y, *args, **kwargs):
    set_seed(seed)
    return network_health(deep_mlp(*args, **kwargs), X, y)


def acts(stats):
    return [s for s in stats if s.kind == "activation"]


@pytest.mark.parametrize("seed", SEEDS)
def test_default_relu_units_die_with_depth_and_layer_1_gets_15x_less_gradient(seed, data):
    _, _, X, y = data
    relus = acts(health(seed, X, y, 4, "ReLU"))
    assert relus[0].dead < 0.05 and relus[-1].dead > 0.2
    assert 10 < relus[-1].grad_std / relus[0].grad_std < 20


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_weights_saturate_sigmoid_and_tanh_but_hardly_kill_relu(seed, data):
    _, _, X, _ = data
    for activation in ("sigmoid", "tanh"):
        assert max(s.saturated for s in acts(health(seed, X, None, 4, activation))) < 0.01
        assert min(s.saturated for s in acts(health(seed, X, None, 4, activation, 1.0))) > 0.5
    assert max(s.dead for s in acts(health(seed, X, None, 4, "ReLU", 1.0))) < 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_relus_die_once_the_spread_of_z_falls_below_its_offset(seed, data):
    _, _, X, _ = data
    zs = [s.output for s in health(seed, X, None, 4, "ReLU") if s.name == "Linear"][:4]
    spreads = [z.std(dim=0).mean().item() for z in zs]
    offsets = [z.mean(dim=0).abs().mean().item() for z in zs]     # |b + w . mean(h)|
    assert all(2 < a / b < 3.5 for a, b in zip(spreads, spreads[1:])), spreads  # "about 2.6x"
    assert 0.8 < spreads[0] / offsets[0] < 1.25                    # layer 1: about equal
    assert spreads[-1] < offsets[-1] / 3                           # layer 4: "a quarter"
    far_below = zs[-1].mean(dim=0) < -3 * zs[-1].std(dim=0)
    dead = (zs[-1] <= 0).all(dim=0)
    assert (far_below & dead).sum() >= 0.9 * far_below.sum() >= 0.8 * dead.sum()


def test_pytorch_default_weight_variance_is_one_third_of_one_over_n_in():
    for seed in SEEDS:
        set_seed(seed)
        assert abs(3 * 256 * nn.Linear(256, 256).weight.var().item() - 1) < 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_gradient_shrinks_about_7x_per_layer(seed, data):
    _, _, X, y = data
    stats = health(seed, X, y, 10, "sigmoid")
    grads = [s.grad_std for s in acts(stats)]
    ratios = [s.grad_data_ratio for s in stats if s.grad_data_ratio is not None]
    per_layer = (grads[-1] / grads[0]) ** (1 / 9)
    assert 6.5 < per_layer < 7.5, per_layer                   # derived: 4 sqrt(3) = 6.93
    assert ratios[0] < ratios[-1] / 1e8                       # "hundreds of millions"
    assert 0.1 * ratios[-1] > 0.01 and 0.1 * ratios[0] < 1e-9  # "a few percent", "a billionth"


def signal_sizes(n, std, runs, steps=100):
    v = nn.functional.normalize(torch.randn(runs, n, 1, dtype=torch.float64), dim=1)
    sizes = []
    for _ in range(steps):
        v = (std * torch.randn(runs, n, n)).double() @ v
        sizes.append(v.norm(dim=(1, 2)).log10())
    return torch.stack(sizes, dim=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_products_of_random_matrices(seed):
    set_seed(seed)
    exploding, drifting = signal_sizes(4, 1.0, 200), signal_sizes(4, 0.5, 200)
    wide = signal_sizes(256, 1 / 16, 5)
    for sizes, rms_factor in ((exploding, 4), (drifting, 1)):   # squared length, per matrix
        steps = torch.cat([sizes[:, :1], sizes.diff(dim=1)], dim=1)
        assert abs((100**steps).mean() - rms_factor) < 0.15 * rms_factor
    exploding, drifting = exploding[:, -1].median(), drifting[:, -1].median()
    assert 22 < exploding < 27 and drifting < -3, (exploding, drifting)   # RMS: 10^30, 1
    assert wide.abs().max() < math.log10(3)                   # within a factor 3 of 1


@pytest.mark.parametrize("seed", SEEDS)
def test_saturated_tanh_still_explodes_backwards(seed, data):
    _, _, X, y = data
    tanhs = acts(health(seed, X, y, 10, "tanh", 1.0))
    assert min(s.saturated for s in tanhs) > 0.8
    assert tanhs[0].grad_std > 1000 * tanhs[-1].grad_std


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_with_std_one_over_sqrt_n_shrinks_about_sqrt_2_per_layer(seed, data):
    _, _, X, y = data
    stats = health(seed, X, y, 20, "ReLU", 0.0625)
    stds = [s.std for s in acts(stats)]
    ratios = [s.grad_data_ratio for s in stats if s.grad_data_ratio is not None][1:-1]
    assert 1.3 < (stds[0] / stds[-1]) ** (1 / 19) < 1.5
    assert max(ratios) / min(ratios) < 3                      # grad:data: within 3x


@pytest.mark.parametrize("seed", SEEDS)
def test_deeper_sigmoid_nets_train_slower(seed, data):
    train_iter, test_small, _, _ = data
    runs = {}
    for depth in (1, 2, 3):
        set_seed(seed)
        net = deep_mlp(depth, "sigmoid", width=128)
        runs[depth] = train(net, train_iter, test_small, nn.CrossEntropyLoss(), 5,
                            torch.optim.SGD(net.parameters(), lr=0.1), plot=False)
    one, two, three = runs.values()
    assert one.train_loss[0] < 2.1 and one.train_loss[-1] < 0.85        # learns at once
    assert two.train_loss[2] > 2.2 and 1.5 < two.train_loss[-1] < 2.1   # late start
    assert three.stalled and min(three.train_loss) > 2.29                # not in 5 epochs


def train_clipped(seed, max_norm, data, broken=True, num_epochs=3):
    """The notebook's clipping runs: 10 of the 5,000 images left at 0-255 (or clean), lr 0.1."""
    train_iter, test_small, _, _ = data
    if broken:
        set_seed(0)                               # the broken images are fixed, as in 07
        train_iter, _ = load_fashion_mnist(64, num_train=5000, device="cpu")
        bad = torch.randperm(5000)[:10]
        train_iter.X = train_iter.X.clone()
        train_iter.X[bad] *= 255
    set_seed(seed)
    net = deep_mlp(2, "ReLU", width=128)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    lengths = []

    def updater(batch_size):
        lengths.append(nn.utils.clip_grad_norm_(net.parameters(), max_norm).item())
        optimizer.step()
        optimizer.zero_grad()

    history = train(net, train_iter, test_small, nn.CrossEntropyLoss(), num_epochs, updater,
                    plot=False)
    return history, torch.tensor(lengths)


@pytest.mark.parametrize("seed", SEEDS)
def test_clipping_above_the_usual_length_clips_only_spikes_and_saves_the_run(seed, data):
    clean, clean_lengths = train_clipped(seed, math.inf, data, broken=False)
    unclipped, _ = train_clipped(seed, math.inf, data)
    clipped, lengths = train_clipped(seed, 5.0, data)
    assert (clean_lengths > 5).float().mean() < 0.02 and not clean.diverged
    if seed == 0:
        assert clean_lengths.max() < 5                        # the figure: seed 0, clean
    assert unclipped.diverged
    assert not clipped.diverged and 0.02 < (lengths > 5).float().mean() < 0.08
    assert 50 < lengths.max() < 200                           # "spikes up to about 100"
    assert abs(max(clipped.test_acc) - max(clean.test_acc)) < 0.03   # "within 3 points"


@pytest.mark.parametrize("seed", SEEDS)
def test_exercises(seed, data):
    _, _, X, y = data
    # 1: tanh loses sqrt(3) per layer
    grads = [s.grad_std for s in acts(health(seed, X, y, 10, "tanh"))]
    assert abs((grads[-1] / grads[0]) ** (1 / 9) - math.sqrt(3)) < 0.15
    # 2: std sqrt(2/256) keeps a 20-layer ReLU network steady (bisection, as in the solution)
    def last_over_first(std):
        stds = [s.std for s in acts(health(seed, X, None, 20, "ReLU", std))]
        return stds[-1] / stds[0]

    low, high = 0.05, 0.15
    for _ in range(10):
        std = math.sqrt(low * high)
        low, high = (std, high) if last_over_first(std) < 1 else (low, std)
    assert abs(last_over_first(std) - 1) < 0.1 and abs(std - math.sqrt(2 / 256)) < 0.008
    # 3: clipping at 1 clips a large share of the steps
    _, lengths = train_clipped(seed, 1.0, data, num_epochs=1)
    assert (lengths > 1).float().mean() > 0.3
    # 4: 20 sigmoid layers
    stats = health(seed, X, y, 20, "sigmoid")
    ratios = [s.grad_data_ratio for s in stats if s.grad_data_ratio is not None]
    assert 1e16 < ratios[-1] / ratios[0] < 1e19
