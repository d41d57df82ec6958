"""The claims of notebook 06 (dropout), re-checked over seeds 0, 1 and 2.

Sections 2-6 use a 784-128-128-10 MLP. The training runs (sections 7-9) are those of the
notebook: the 784-128-10 MLP of notebooks 04 and 05 with dropout after its ReLU, the first
1,024 Fashion-MNIST training images, the last 1,000 training images as the validation set,
plain SGD (lr 0.25, batch 32), 30 epochs; the first 2,000 test images, used once.
"""

import pytest
import torch
from torch import nn

from helpers import evaluate, evaluate_accuracy, load_fashion_mnist, set_seed, train

SEEDS = (0, 1, 2)
NUM_EPOCHS = 30


def dropout_layer(X, p):
    """The from-scratch dropout of notebook 06."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be between 0 and 1, got {p}")
    if p == 1:
        return torch.zeros_like(X)
    mask = torch.empty_like(X).bernoulli_(1 - p)
    return mask * X / (1 - p)


class DropoutMLP(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
        self.lin1 = nn.Linear(784, 128)
        self.lin2 = nn.Linear(128, 128)
        self.lin3 = nn.Linear(128, 10)

    def forward(self, X):
        H1 = torch.relu(self.lin1(X.reshape(len(X), -1)))
        if self.training:
            H1 = dropout_layer(H1, self.p)
        H2 = torch.relu(self.lin2(H1))
        if self.training:
            H2 = dropout_layer(H2, self.p)
        return self.lin3(H2)


def make_mlp(p):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(128, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, 10))


def make_small_mlp(p):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(128, 10))


def last5(values):
    return sum(values[-5:]) / 5


# ------------------------------------------------------------------ the layer (sections 2-5)

def test_dropout_edge_cases_and_errors():
    X = torch.rand(50, 20) + 0.1
    assert torch.equal(dropout_layer(X, 0.0), X)
    assert torch.equal(dropout_layer(X, 1.0), torch.zeros_like(X))
    Y = dropout_layer(X, 0.5)
    assert torch.all((Y == 0) | (Y == 2 * X))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout_layer(X, bad)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_the_noise_factor_has_mean_1_and_variance_p_over_1_minus_p(seed, p):
    torch.manual_seed(seed)
    xi = dropout_layer(torch.ones(1_000_000), p)
    torch.testing.assert_close(xi.mean(), torch.tensor(1.0), rtol=0, atol=0.01)
    torch.testing.assert_close(xi.var(), torch.tensor(p / (1 - p)), rtol=0.02, atol=0)
    h = torch.linspace(-2, 2, 9)                        # E[h'] = h for any h, not only 1
    mean = dropout_layer(h.expand(100_000, -1), p).mean(dim=0)
    torch.testing.assert_close(mean, h, rtol=0, atol=5 * 2 * (p / (1 - p) / 100_000) ** 0.5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_nn_dropout_draws_our_masks_after_the_same_seed(seed, p):
    X = torch.rand(64, 256) + 0.1
    torch.manual_seed(seed)
    ours = dropout_layer(X, p)
    torch.manual_seed(seed)
    theirs = nn.Dropout(p).train()(X)
    torch.testing.assert_close(ours, theirs)
    assert torch.equal(nn.Dropout(p).eval()(X), X)      # eval(): the identity


@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_and_sequential_mlps_agree_in_both_modes(seed):
    torch.manual_seed(seed)
    scratch, concise = DropoutMLP(0.5), make_mlp(0.5)
    for i, layer in [(1, scratch.lin1), (4, scratch.lin2), (7, scratch.lin3)]:
        concise[i].load_state_dict(layer.state_dict())
    images = torch.rand(64, 1, 28, 28)
    scratch.eval()
    concise.eval()
    torch.testing.assert_close(scratch(images), concise(images))
    scratch.train()
    concise.train()
    outputs = []
    for net in (scratch, concise):
        torch.manual_seed(seed + 10)
        outputs.append(net(images))
    torch.testing.assert_close(*outputs)
    assert not torch.equal(scratch(images), outputs[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_keeps_the_mean_widens_the_spread_and_the_next_relu_shifts_the_mean(seed):
    """Section 6: one fixed batch, a fresh network, one mask with p = 1/2."""
    train_iter, _ = load_fashion_mnist(32, num_train=1024)
    set_seed(seed)
    net = DropoutMLP(0.5)
    with torch.no_grad():
        H1 = torch.relu(net.lin1(train_iter.X[:256].reshape(256, -1)))
        D1 = dropout_layer(H1, 0.5)
        H2_off, H2_on = torch.relu(net.lin2(H1)), torch.relu(net.lin2(D1))
    assert abs(D1.mean() - H1.mean()) < 0.05 * H1.mean()
    assert D1.std() > 1.3 * H1.std()
    zeros_off, zeros_on = ((H == 0).float().mean().item() for H in (H1, D1))
    assert 0.4 < zeros_off < 0.6 and 0.7 < zeros_on < 0.8   # "one in two", "three in four"
    assert 1.15 * H2_off.mean() < H2_on.mean() < 1.4 * H2_off.mean()   # Jensen: "a quarter"


def test_the_same_mask_commutes_with_relu_but_not_with_sigmoid():
    """Exercise 4."""
    h = torch.randn(1000, 128)
    for act, commutes in [(torch.relu, True), (torch.sigmoid, False)]:
        torch.manual_seed(3)
        before = act(dropout_layer(h, 0.5))
        torch.manual_seed(3)
        after = dropout_layer(act(h), 0.5)
        assert torch.allclose(before, after) == commutes


def test_unscaled_dropout_needs_1_minus_p_at_test_time():
    """Exercise 1."""
    torch.manual_seed(0)
    h, p = torch.full((1_000_000,), 3.0), 0.5
    training_mean = (torch.empty_like(h).bernoulli_(1 - p) * h).mean()
    torch.testing.assert_close(training_mean, (1 - p) * h[0], rtol=0.01, atol=0)


# ---------------------------------------------------------- the training runs (sections 7-9)

@pytest.fixture(scope="module")
def data():
    train_iter, _ = load_fashion_mnist(32, num_train=1024)
    everything, test_iter = load_fashion_mnist(1000)
    val_set = [(everything.X[-1000:], everything.y[-1000:])]
    test_set = [(test_iter.X[:2000], test_iter.y[:2000])]
    return train_iter, val_set, test_set, [(train_iter.X, train_iter.y)]


def one_run(data, p, seed, *, num_epochs=NUM_EPOCHS, lr=0.25):
    """The notebook's `run` (and, for p = 0.8 and 12 epochs, its playground's default run):
    the History, with the network, the eval-mode training accuracy and the gap per epoch.
    To save time, the training accuracy is measured over the last 5 epochs only (all the
    claims use); evaluating draws no random numbers, so training is the notebook's."""
    train_iter, val_set, _, train_set = data
    loss = nn.CrossEntropyLoss()

    class TrainSetAccuracy:
        def __init__(self, net):
            self.net, self.values = net, []

        def update(self, history):
            late = len(history.train_loss) > num_epochs - 5
            self.values.append(evaluate(self.net, train_set, loss)[1] if late else float("nan"))

    set_seed(seed)
    net = make_small_mlp(p)
    recorder = TrainSetAccuracy(net)
    history = train(net, train_iter, val_set, loss, num_epochs,
                    torch.optim.SGD(net.parameters(), lr=lr), plot=recorder)
    history.net, history.train_acc_eval_mode = net, recorder.values
    history.gap = [a - b for a, b in zip(recorder.values, history.test_acc)]
    return history


@pytest.fixture(scope="module")
def runs(data):
    return {label: [one_run(data, p, seed) for seed in SEEDS]
            for label, p in [("plain", 0.0), ("dropout", 0.5)]}


@pytest.fixture(scope="module")
def table(runs):
    """Per setting, rows = seeds; columns: lowest validation loss, its last 5, best validation
    accuracy, gap (last 5), training accuracy in eval mode (last 5), logged (last 5)."""
    return {label: torch.tensor([[min(h.test_loss), last5(h.test_loss), max(h.test_acc),
                                  last5(h.gap), last5(h.train_acc_eval_mode), last5(h.train_acc)]
                                 for h in hs])
            for label, hs in runs.items()}


def with_masks(net):
    noisy = make_small_mlp(0.5)
    noisy.load_state_dict(net.state_dict())
    return noisy.train()


def masked_accuracy(net, X, y):
    with torch.no_grad():
        return (net(X).argmax(dim=1) == y).float().mean().item()


def test_without_dropout_the_validation_loss_climbs_back_with_dropout_it_stays_low(table):
    plain, drop = table["plain"], table["dropout"]
    assert torch.all(plain[:, 1] > plain[:, 0] + 0.05)       # "climbed back by 0.07 or more"
    assert torch.all(plain[:, 1] > plain[:, 0] + 0.07)
    assert torch.all(drop[:, 1] < drop[:, 0] + 0.04)         # "within 0.04 at the end"
    assert torch.all(drop[:, 1] < plain[:, 1])


def test_dropout_gives_the_same_lowest_loss_and_best_accuracy(table):
    plain, drop = table["plain"], table["dropout"]
    assert torch.all((drop[:, 0] - plain[:, 0]).abs() < 0.045)
    assert torch.all((drop[:, 2] - plain[:, 2]).abs() < 0.012)


def test_dropout_narrows_the_gap_by_2_to_4_points_on_every_seed(table):
    narrowed = table["plain"][:, 3] - table["dropout"][:, 3]
    assert torch.all(narrowed > 0.015) and torch.all(narrowed < 0.045)


def test_the_logged_training_accuracy_is_about_5_points_low_with_dropout_only(table):
    plain, drop = table["plain"], table["dropout"]
    assert 0.04 < (drop[:, 4] - drop[:, 5]).mean() < 0.08
    assert torch.all(drop[:, 4] - drop[:, 5] > 0.03)
    assert torch.all((plain[:, 4] - plain[:, 5]).abs() < 0.02)      # "within 2 points"


def test_the_test_set_once_lower_loss_with_dropout_same_accuracy(runs, data):
    _, _, test_set, _ = data
    loss = nn.CrossEntropyLoss()
    test = {label: torch.tensor([evaluate(h.net, test_set, loss) for h in hs])
            for label, hs in runs.items()}
    assert torch.all(test["dropout"][:, 0] < test["plain"][:, 0] - 0.02)
    assert abs(test["dropout"][:, 1].mean() - test["plain"][:, 1].mean()) < 0.015


def test_forgetting_eval_costs_points_and_dropout_training_halves_the_cost(runs, data):
    """Section 8: ten passes with masks on; the no-dropout networks lose more, every seed."""
    _, val_set, _, _ = data
    X, y = val_set[0]
    torch.manual_seed(0)
    cost = {}
    for label, hs in runs.items():
        lost = []
        for h in hs:
            right = evaluate_accuracy(h.net, val_set)
            buggy = torch.tensor([masked_accuracy(with_masks(h.net), X, y) for _ in range(10)])
            if label == "dropout":
                assert buggy.max() < right - 0.005 and buggy.std() > 0
                assert buggy.mean() < right - 0.02
            lost.append(right - buggy.mean().item())
        cost[label] = torch.tensor(lost)
    assert torch.all(cost["dropout"] < cost["plain"] - 0.02)
    assert 0.025 < cost["dropout"].mean() < 0.045          # "about 3.5 points"
    assert 0.07 < cost["plain"].mean() < 0.1               # "about 8.5"


def test_monte_carlo_dropout_wins_back_the_points_of_one_noisy_pass(runs, data):
    """Exercise 3, on each seed's dropout network."""
    _, val_set, _, _ = data
    X, y = val_set[0]
    for h in runs["dropout"]:
        torch.manual_seed(0)
        eval_acc, noisy = evaluate_accuracy(h.net, val_set), with_masks(h.net)
        with torch.no_grad():
            single = (noisy(X).argmax(dim=1) == y).float().mean().item()
            probs = sum(torch.softmax(noisy(X), dim=1) for _ in range(20)) / 20
        mc = (probs.argmax(dim=1) == y).float().mean().item()
        assert abs(mc - eval_acc) < 0.015 and mc > single + 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_at_p_0_8_the_logged_curves_are_below_the_validation_curves_but_the_real_gap_is_positive(
        data, table, seed):
    """The playground's static run (seed 0) and exercise 2, which measures its real gap."""
    h = one_run(data, 0.8, seed, num_epochs=12)
    assert all(tr < va for tr, va in zip(h.train_acc, h.test_acc))
    assert all(tr > va for tr, va in zip(h.train_loss, h.test_loss))
    assert max(h.test_acc) < 0.7 < min(table["dropout"][:, 2])
    real, logged, val = h.train_acc_eval_mode[-1], h.train_acc[-1], h.test_acc[-1]
    assert 0 < real - val < 0.07
    assert real - logged > 0.15


@pytest.mark.parametrize("p", [0.0, 0.8])
def test_the_playground_says_diverged_at_the_largest_learning_rate(data, p):
    h = one_run(data, p, 0, num_epochs=3, lr=10.0)
    assert h.diverged or h.stalled
    assert "diverged" in h.message or "not learning" in h.message
