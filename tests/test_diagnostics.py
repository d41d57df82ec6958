"""Unit tests of helpers/diagnostics.py: numbers checked by hand or against plain autograd."""

import io
import math
import warnings

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from helpers import (
    format_health,
    network_health,
    plot_distributions,
    plot_health,
    plot_update_ratios,
    recording_updater,
    train,
    update_data_ratios,
)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.ReLU(),
                         nn.Linear(6, 3))


def batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_dead_fraction_is_exact_on_a_hand_built_layer():
    layer = nn.Linear(2, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-1.0, -1.0],    # negative for positive inputs: dead
                                         [1.0, 1.0],      # always positive: alive
                                         [1.0, -1.0],     # positive for one example only: alive
                                         [0.0, 0.0]]))    # bias -1 below: dead
        layer.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -1.0]))
    X = torch.tensor([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    stats = network_health(nn.Sequential(layer, nn.ReLU()), X)
    assert stats[1].dead == 0.5
    assert stats[1].saturated is None
    assert stats[0].dead is None and stats[0].kind == "weights"
    assert stats[1].kind == "activation"


def test_saturated_fraction_is_exact_for_tanh_and_sigmoid():
    X = torch.tensor([[-5.0, -1.0, 0.0, 0.5, 2.0, 3.0]])  # tanh(2) = 0.964 is not saturated
    tanh = network_health(nn.Sequential(nn.Tanh()), X)[0]
    assert tanh.saturated == pytest.approx(2 / 6)            # -5 and 3 only
    assert tanh.dead is None
    X = torch.tensor([[-6.0, -3.4, 0.0, 2.0, 5.0], [-1.0, 1.0, 4.0, -3.6, 3.4]])
    # sigmoid < 0.03 or > 0.97 at -6, 5, 4 (0.982) and -3.6 (0.027), not at +-3.4 (0.032)
    sigmoid = network_health(nn.Sequential(nn.Sigmoid()), X)[0]
    assert sigmoid.saturated == pytest.approx(4 / 10)


def test_forward_statistics_match_a_manual_forward_pass():
    net, (X, _) = small_net(), batch()
    stats = network_health(net, X)
    h = X
    for layer, s in zip(net, stats):
        h = layer(h).detach()
        assert s.mean == pytest.approx(h.double().mean().item(), rel=1e-6, abs=1e-9)
        assert s.std == pytest.approx(h.double().std().item(), rel=1e-6)
        torch.testing.assert_close(s.output, h)


@pytest.mark.parametrize("custom_loss", [False, True])
def test_gradient_statistics_match_plain_autograd(custom_loss):
    net, (X, y) = small_net(1), batch(1)
    if custom_loss:
        def loss(out, y):   # squared error against one-hot labels, one number per example
            return ((out - nn.functional.one_hot(y, 3)) ** 2).sum(dim=1)
    else:
        loss = None
    stats = network_health(net, X, y, loss=loss)

    outputs, h = [], X
    for layer in net:
        h = layer(h)
        h.retain_grad()
        outputs.append(h)
    value = (loss(h, y) if custom_loss else nn.functional.cross_entropy(h, y)).mean()
    value.backward()
    for layer, out, s in zip(net, outputs, stats):
        assert s.grad_std == pytest.approx(out.grad.std().item(), rel=1e-5)
        assert s.grad_norm == pytest.approx(out.grad.norm().item(), rel=1e-5)
        torch.testing.assert_close(s.output_grad, out.grad)
        if isinstance(layer, nn.Linear):
            w = layer.weight
            assert s.weight_std == pytest.approx(w.std().item(), rel=1e-5)
            assert s.weight_grad_std == pytest.approx(w.grad.std().item(), rel=1e-5)
            ratio = (w.grad.std() / w.std()).item()
            assert s.grad_data_ratio == pytest.approx(ratio, rel=1e-5)
        else:
            assert s.weight_std is None and s.grad_data_ratio is None


def test_parameters_grad_are_left_alone():
    net, (X, y) = small_net(), batch()
    network_health(net, X, y)
    assert all(p.grad is None for p in net.parameters())


def test_without_labels_there_are_no_gradient_numbers():
    net, (X, _) = small_net(), batch()
    stats = network_health(net, X)
    assert all(s.grad_std is None and s.output_grad is None for s in stats)
    assert all(s.grad_data_ratio is None for s in stats)
    assert isinstance(plot_health(stats), Figure)
    assert len(plot_distributions(stats).axes) == 2     # one row: outputs only


def test_layer_before_input_gradient_is_skipped_not_an_error():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))   # Flatten's output needs no gradient
    stats = network_health(net, torch.randn(6, 2, 2), torch.randint(0, 3, (6,)))
    assert stats[0].grad_std is None
    assert stats[1].grad_std is not None and stats[1].grad_data_ratio > 0


def test_dropout_is_measured_in_the_mode_the_net_is_in():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 200), nn.ReLU(), nn.Dropout(0.5))
    X = torch.randn(64, 10)
    net.eval()
    relu, drop = network_health(net, X)[1:]
    assert drop.std == relu.std                           # eval: dropout does nothing
    net.train()
    relu, drop = network_health(net, X)[1:]
    zeros_before = (relu.output == 0).float().mean().item()
    zeros_after = (drop.output == 0).float().mean().item()
    assert zeros_after > zeros_before + 0.2               # about half of the rest zeroed


def test_huge_and_tiny_values_do_not_overflow():
    X = torch.tensor([[1e25, -1e25, 3e25, -3e25], [1e-25, -1e-25, 3e-25, -3e-25]])
    big, tiny = (network_health(nn.Sequential(nn.Identity()), row[None])[0] for row in X)
    assert math.isfinite(big.std) and big.std == pytest.approx(1e25 * math.sqrt(20 / 3))
    assert tiny.std == pytest.approx(1e-25 * math.sqrt(20 / 3))


def test_update_data_ratio_of_a_known_gradient():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
    layer.weight.grad = 0.5 * layer.weight.detach().clone()   # std(lr * grad) = lr/2 * std(w)
    layer.bias.grad = torch.ones(2)
    ratios = update_data_ratios(nn.Sequential(layer), lr=0.02)
    assert list(ratios) == ["0.weight"]                       # biases are not weight matrices
    assert ratios["0.weight"] == pytest.approx(-2.0)          # log10(0.02 * 0.5)


def test_recording_updater_steps_like_sgd_and_logs_every_step():
    batches = [batch(seed, n=8) for seed in range(5)]
    net_a, net_b = small_net(2), small_net(2)
    opt_a = torch.optim.SGD(net_a.parameters(), lr=0.1)
    log = []
    train(net_a, batches, batches[:1], nn.CrossEntropyLoss(), 2,
          recording_updater(net_a, opt_a, log), device="cpu", plot=False)
    opt_b = torch.optim.SGD(net_b.parameters(), lr=0.1)
    first = None
    for _ in range(2):
        for X, y in batches:
            opt_b.zero_grad()
            nn.functional.cross_entropy(net_b(X), y).backward()
            first = first or update_data_ratios(net_b, 0.1)
            opt_b.step()
    for p_a, p_b in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(p_a, p_b)
    assert len(log) == 10
    assert list(log[0]) == ["0.weight", "2.weight", "4.weight"]
    assert log[0] == pytest.approx(first)


def test_plots_are_figures_with_the_promised_parts():
    net, (X, y) = small_net(), batch()
    stats = network_health(net, X, y)
    fig = plot_health(stats, title="small net")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    ax_grad, ax_ratio = fig.axes[2], fig.axes[3]
    assert ax_grad.get_yscale() == "log" and ax_ratio.get_yscale() == "log"
    assert len(ax_grad.patches) == 2 and len(ax_ratio.patches) == 3   # 2 activations, 3 weights
    low, high = ax_grad.get_ylim()
    assert high / low >= 100                  # a log axis shows at least two decades
    fig = plot_distributions(stats)
    assert len(fig.axes) == 4                                     # 2 layers x (outputs, grads)
    log = [{"0.weight": -3.5 + 0.1 * t, "2.weight": -2.5} for t in range(20)]
    fig = plot_update_ratios(log)
    (ax,) = fig.axes
    guides = [line for line in ax.lines if set(line.get_ydata()) == {-3}]
    assert len(guides) == 1 and len(ax.lines) == 3


def test_exploding_net_is_drawn_without_warnings():
    torch.manual_seed(0)
    layers = []
    for _ in range(12):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    net = nn.Sequential(*layers)
    for layer in net[::2]:
        nn.init.normal_(layer.weight, std=1000.0)          # x 5000 per layer: inf by the end
    X, y = torch.randn(32, 64), torch.randint(0, 64, (32,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = network_health(net, X, y)
        assert not math.isfinite(stats[-1].std)
        for fig in (plot_health(stats), plot_distributions(stats)):
            fig.savefig(io.BytesIO(), format="png")
    assert "ReLU" in format_health(stats)
