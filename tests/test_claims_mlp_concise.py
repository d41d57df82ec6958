"""The teaching claims of notebooks/03_mlp_concise.ipynb, checked with the helpers.

The notebook's `MLP`, `make_mlp` and `train_mlp` are repeated here (a few lines each) so the
tests do not depend on executing the notebook. The width and depth experiment is run once,
over the notebook's paired seeds 0, 1, 2, on its budget (5,000 images, 3 epochs, batch 32,
learning rate 0.05), and every claim the notebook makes about it is checked against it.
"""

import io
import math

import pytest
import torch
from torch import nn

from helpers import evaluate, load_fashion_mnist, set_seed, train

SEEDS = (0, 1, 2)
WIDTHS = (16, 64, 1024)


# --- the notebook's code ----------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self, num_hidden=256):
        super().__init__()
        self.hidden = nn.Linear(784, num_hidden)
        self.output = nn.Linear(num_hidden, 10)

    def forward(self, X):
        return self.output(torch.relu(self.hidden(X.reshape(len(X), -1))))


def sequential_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def raw_params(std=0.01):
    """Notebook 02's tensors: W in x out, normal with standard deviation `std`, zero biases."""
    return [torch.randn(784, 256) * std, torch.zeros(256), torch.randn(256, 10) * std,
            torch.zeros(10)]


def net_02(X, params):
    W1, b1, W2, b2 = params
    return torch.relu(X.reshape(len(X), -1) @ W1 + b1) @ W2 + b2


def copy_into(net, params):
    W1, b1, W2, b2 = params
    with torch.no_grad():
        net[1].weight.copy_(W1.T)
        net[1].bias.copy_(b1)
        net[3].weight.copy_(W2.T)
        net[3].bias.copy_(b2)
    return net


def make_mlp(width, depth):
    layers, n_in = [nn.Flatten()], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, 10))


def train_mlp(lr=0.05, batch_size=32, num_epochs=3, width=64, depth=1, seed=0):
    train_iter, test_iter = load_fashion_mnist(batch_size, num_train=5_000)
    set_seed(seed)
    net = make_mlp(width, depth)
    set_seed(seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return train(net, train_iter, test_iter, nn.CrossEntropyLoss(), num_epochs, optimizer,
                 plot=False)


def batch(seed, batch_size=256):
    train_iter, _ = load_fashion_mnist(batch_size)
    set_seed(seed)
    return next(iter(train_iter))


# --- sections 1-5: what nn.Module gives you -------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("std", [0.01, 0.1])
def test_sequential_computes_notebook_02s_mlp_outputs_and_gradients(seed, std):
    X, y = batch(seed)
    set_seed(seed)
    params = raw_params(std)
    net = copy_into(sequential_mlp(), params)
    torch.testing.assert_close(net(X), net_02(X, params))
    loss = nn.CrossEntropyLoss()
    leaves = [p.clone().requires_grad_() for p in params]          # exercise 1
    ours = torch.autograd.grad(loss(net_02(X, leaves), y), leaves)
    theirs = torch.autograd.grad(loss(net(X), y), list(net.parameters()))
    for g_ours, g_theirs in zip(ours, theirs):
        torch.testing.assert_close(g_theirs, g_ours.T if g_ours.ndim == 2 else g_ours)


def test_parameters_named_and_counted():
    names = {name: tuple(p.shape) for name, p in MLP().named_parameters()}
    assert names == {"hidden.weight": (256, 784), "hidden.bias": (256,),
                     "output.weight": (10, 256), "output.bias": (10,)}
    assert [name for name, _ in sequential_mlp().named_parameters()] == [
        "1.weight", "1.bias", "3.weight", "3.bias"]
    for net in (MLP(), sequential_mlp()):
        assert sum(p.numel() for p in net.parameters()) == 203_530


@pytest.mark.parametrize("seed", SEEDS)
def test_default_init_is_uniform_within_one_over_sqrt_fan_in(seed):
    set_seed(seed)
    model = MLP()
    for layer in (model.hidden, model.output):
        n_in = layer.in_features
        bound, expected_std = 1 / math.sqrt(n_in), 1 / math.sqrt(3 * n_in)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert abs(layer.weight.std().item() / expected_std - 1) < 0.03   # "within 3 %"


@pytest.mark.parametrize("seed", SEEDS)
def test_nn_init_sets_the_chosen_std_and_zero_biases(seed):
    def init_normal(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.01)
            nn.init.zeros_(module.bias)

    set_seed(seed)
    model = MLP().apply(init_normal)
    for layer in (model.hidden, model.output):
        assert abs(layer.weight.std().item() / 0.01 - 1) < 0.05 and (layer.bias == 0).all()


def test_train_and_eval_flip_every_module_and_these_layers_ignore_the_flag():
    X, _ = batch(0)
    net = sequential_mlp()
    net.eval()
    assert not net.training and not any(m.training for m in net)
    out_eval = net(X)
    net.train()
    assert net.training and all(m.training for m in net)
    assert torch.equal(net(X), out_eval)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_loaded_state_dict_gives_identical_outputs(seed, tmp_path):
    train_iter, test_iter = load_fashion_mnist(32, num_train=1_000)
    set_seed(seed)
    model = MLP()
    loss = nn.CrossEntropyLoss()
    history = train(model, train_iter, test_iter, loss, 1,
                    torch.optim.SGD(model.parameters(), lr=0.1), plot=False)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    buffer.seek(0)
    for source in (buffer, tmp_path / "mlp.pt"):
        copy = MLP()
        copy.load_state_dict(torch.load(source))
        assert torch.equal(copy(test_iter.X), model(test_iter.X))
        assert evaluate(copy, test_iter, loss)[1] == history.test_acc[-1]


def test_layers_in_a_plain_list_are_not_registered():                  # exercise 2
    class DeepMLP(nn.Module):
        def __init__(self, widths, container=list):
            super().__init__()
            sizes = [784] + widths
            self.layers = container([nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
            self.output = nn.Linear(sizes[-1], 10)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(DeepMLP([256, 128])) == 1_290
    assert count(DeepMLP([256, 128], container=nn.ModuleList)) == 235_146


def test_only_the_same_architecture_can_load_it():                      # exercise 3
    state = MLP().state_dict()
    MLP().load_state_dict(state)
    with pytest.raises(RuntimeError, match="size mismatch for hidden.weight"):
        MLP(num_hidden=128).load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*Unexpected key"):
        make_mlp(256, 1).load_state_dict(state)


# --- section 6 and the playground: width and depth over paired seeds --------------------------

@pytest.fixture(scope="module")
def runs():
    """The notebook's experiment: {(width, depth): [History for seeds 0, 1, 2]}."""
    settings = [(w, 1) for w in WIDTHS] + [(64, 0), (64, 2), (64, 4)]
    return {(w, d): [train_mlp(width=w, depth=d, seed=s) for s in SEEDS] for w, d in settings}


def last(runs, key, width, depth=1):
    return torch.tensor([getattr(h, key)[-1] for h in runs[width, depth]])


def curves(runs, key, settings):
    return torch.tensor([[getattr(h, key) for h in runs[s]] for s in settings])  # set, seed, ep


def test_no_run_failed(runs):
    for histories in runs.values():
        assert not any(h.diverged or h.stalled for h in histories)


def test_wider_is_lower_in_training_loss_and_seed_1_ends_highest_in_test_loss(runs):
    train_loss = curves(runs, "train_loss", [(w, 1) for w in WIDTHS])
    assert (train_loss.diff(dim=0) < 0).all()          # every seed, every epoch
    test_last = torch.stack([last(runs, "test_loss", w) for w in WIDTHS])
    assert test_last[:, 1].min() > test_last[:, [0, 2]].max()


def test_each_hidden_layer_raises_the_training_loss_and_two_end_highest(runs):
    train_loss = curves(runs, "train_loss", [(64, d) for d in (0, 1, 2)])
    assert (train_loss.diff(dim=0) > 0).all()
    test_depth = torch.stack([last(runs, "test_loss", 64, d) for d in (0, 1, 2)])
    assert (test_depth[2] > test_depth[:2].max(dim=0).values).all()


def test_paired_differences(runs):
    def paired(a, b):
        return last(runs, "test_loss", *a) - last(runs, "test_loss", *b)

    wide, deeper = paired((1024, 1), (16, 1)), paired((64, 2), (64, 1))
    none = paired((64, 0), (64, 1))
    assert (wide < -0.02).all() and (deeper > 0.02).all() and (none < 0.01).all()
    test_last = torch.stack([last(runs, "test_loss", w) for w in WIDTHS])
    spread = test_last.max(dim=1).values - test_last.min(dim=1).values
    assert wide.max() - wide.min() < 0.1 and (spread > 0.25).all()
    diff_64 = paired((64, 1), (16, 1))                                  # exercise 4
    assert diff_64.min() < 0 < diff_64.max()


def test_four_hidden_layers_start_near_ln_10_and_stay_behind(runs):
    deep, one = runs[64, 4], runs[64, 1]
    first = torch.tensor([[h.train_loss[0] for h in hs] for hs in (deep, one)])
    gap_loss = torch.tensor([d.test_loss[-1] - o.test_loss[-1] for d, o in zip(deep, one)])
    gap_acc = torch.tensor([max(o.test_acc[-2:]) - max(d.test_acc[-2:])
                            for d, o in zip(deep, one)])
    assert (first[0] > 2.2).all() and (first[0] < math.log(10)).all()
    assert (first[0] - first[1] > 0.9).all()
    assert (gap_loss > 0.1).all() and (gap_acc > 0.05).all()
