"""The teaching claims of notebook 00 (softmax regression: the training loop), checked with
the helpers over seeds 0, 1 and 2.

The two 10-epoch runs on all 60,000 images (lr 0.1 from scratch, lr 0.5 with nn.Linear) are
what the notebook trains; softmax regression is cheap (about 0.1-0.3 s per epoch), so they
are trained once per seed and shared by the tests that read them.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from helpers import TEXT_LABELS, load_fashion_mnist, set_seed, train

SEEDS = [0, 1, 2]
BATCH_SIZE = 256


# --- small local versions of the notebook's from-scratch code ---------------------------------

def softmax(logits):
    E = torch.exp(logits)
    return E / E.sum(dim=1, keepdim=True)


def cross_entropy(logits, y):
    return -torch.log(softmax(logits).gather(1, y.unsqueeze(1))).squeeze(1)


def init_params(device):
    W = (0.01 * torch.randn(784, 10, device=device)).requires_grad_()
    b = torch.zeros(10, device=device, requires_grad=True)
    return W, b


def sgd(params, lr, zero_grads=True):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad
            if zero_grads:
                param.grad.zero_()


def linear(X, W, b):
    return X.reshape(len(X), -1) @ W + b


def written_out_loop(seed, num_train, num_epochs, lr=0.1, zero_grads=True, trace=None):
    """The notebook's loop: mean training loss per epoch. With a `trace` dict, also every
    step's size `lr * |W.grad|`, and the smallest probability of a true class in the batch
    whose gradient first stopped being finite (with that batch's loss)."""
    set_seed(seed)
    data, _ = load_fashion_mnist(BATCH_SIZE, num_train=num_train)
    W, b = init_params(data.device)
    losses = []
    for _ in range(num_epochs):
        total = 0.0
        for X, y in data:
            logits = linear(X, W, b)
            loss = cross_entropy(logits, y).mean()
            loss.backward()
            if trace is not None:
                trace.setdefault("steps", []).append((lr * W.grad.norm()).item())
                if not W.grad.isfinite().all() and "first_bad" not in trace:
                    p_true = softmax(logits.detach()).gather(1, y.unsqueeze(1))
                    trace["first_bad"] = (loss.item(), p_true.min().item())
            sgd([W, b], lr, zero_grads)
            total += loss.item() * len(y)
        losses.append(total / num_train)
    return losses


@functools.cache
def scratch_run(seed):
    """The notebook's `train` run: scratch model, lr 0.1, batch 256, 10 epochs, all images."""
    set_seed(seed)
    train_iter, test_iter = load_fashion_mnist(BATCH_SIZE)
    W, b = init_params(train_iter.device)
    history = train(lambda X: linear(X, W, b), train_iter, test_iter, cross_entropy, 10,
                    lambda batch_size: sgd([W, b], 0.1), plot=False)
    return history, W.detach(), b.detach()


def train_softmax_regression(lr, batch_size, num_epochs, seed=0):
    """The playground's training function (nn.Linear, nn.CrossEntropyLoss, torch.optim.SGD)."""
    set_seed(seed)
    train_iter, test_iter = load_fashion_mnist(batch_size)
    layer = nn.Linear(784, 10).to(train_iter.device)
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr)
    return train(lambda X: layer(X.reshape(len(X), -1)), train_iter, test_iter,
                 nn.CrossEntropyLoss(), num_epochs, optimizer, plot=False)


# --- softmax, cross-entropy, the first loss ----------------------------------------------------

def test_autograd_toy_gradient_accumulation_and_no_grad():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 2).sum().backward()
    assert_close(x.grad, torch.tensor([2.0, 4.0, 6.0]))                 # 2x
    (x ** 2).sum().backward()
    assert_close(x.grad, torch.tensor([4.0, 8.0, 12.0]))                # added, not replaced
    with pytest.raises(RuntimeError, match="in-place"):
        x -= 0.1 * x.grad                                               # refused without no_grad
    with torch.no_grad():
        x -= 0.1 * x.grad
    assert_close(x.detach(), torch.tensor([0.6, 1.2, 1.8]))
    x.grad.zero_()
    assert (x.grad == 0).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_rows_sum_to_one_and_cross_entropy_matches_pytorch(seed):
    set_seed(seed)
    logits = 3 * torch.randn(256, 10)
    y = torch.randint(0, 10, (256,))
    P = softmax(logits)
    assert (P > 0).all()
    assert_close(P.sum(dim=1), torch.ones(256))
    assert_close(P, torch.softmax(logits, dim=1))
    assert_close(cross_entropy(logits, y), F.cross_entropy(logits, y, reduction="none"))
    assert_close(cross_entropy(logits, y).mean(), nn.CrossEntropyLoss()(logits, y))


@pytest.mark.parametrize("seed", SEEDS)
def test_first_loss_is_ln_10(seed):
    _, test_iter = load_fashion_mnist(BATCH_SIZE)
    X, y = next(iter(test_iter))
    zero_loss = cross_entropy(torch.zeros(len(y), 10), y)
    assert_close(zero_loss, torch.full_like(zero_loss, math.log(10)))   # exactly, each image
    set_seed(seed)
    W, b = init_params(X.device)
    with torch.no_grad():
        first = cross_entropy(linear(X, W, b), y).mean().item()
    assert abs(first - math.log(10)) < 0.1                              # small random: close


@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_all_zero_logits_give_ln_of_the_number_of_classes(num_classes):
    labels = torch.randint(0, num_classes, (1000,))
    loss = F.cross_entropy(torch.zeros(1000, num_classes), labels)
    assert_close(loss, torch.tensor(math.log(num_classes)))


def test_all_zero_weights_are_right_on_exactly_one_test_image_in_ten():
    _, test_iter = load_fashion_mnist(BATCH_SIZE)
    predicted = torch.zeros(len(test_iter.y), 10).argmax(dim=1)   # ties: the first, class 0
    assert (predicted == 0).all()
    assert (predicted == test_iter.y).sum().item() == 1000


@pytest.mark.parametrize("num_train, batch_size", [(60_000, 256), (10_000, 256), (5_000, 1000),
                                                   (1_000, 3)])
def test_updates_per_epoch_is_n_over_b_rounded_up(num_train, batch_size):
    train_iter, _ = load_fashion_mnist(batch_size, num_train=num_train)
    assert len(train_iter) == math.ceil(num_train / batch_size)
    sizes = [len(y) for _, y in train_iter]
    assert len(sizes) == len(train_iter) and sum(sizes) == num_train
    assert sizes[-1] == num_train - (len(train_iter) - 1) * batch_size


# --- the loop, and the scratch pieces against PyTorch's ---------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_written_out_loop_lowers_the_loss_every_epoch(seed):
    losses = written_out_loop(seed, num_train=10_000, num_epochs=5)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[0] < math.log(10)


@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_steps_equal_nn_linear_cross_entropy_loss_and_sgd(seed):
    train_iter, _ = load_fashion_mnist(BATCH_SIZE)
    set_seed(seed)
    W, b = init_params(train_iter.device)
    layer = nn.Linear(784, 10).to(train_iter.device)
    with torch.no_grad():
        layer.weight.copy_(W.T)
        layer.bias.copy_(b)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _, (X, y) in zip(range(5), train_iter):
        X = X.reshape(len(X), -1)
        ours = cross_entropy(X @ W + b, y).mean()
        ours.backward()
        sgd([W, b], 0.1)
        theirs = nn.CrossEntropyLoss()(layer(X), y)
        optimizer.zero_grad()
        theirs.backward()
        optimizer.step()
        assert_close(ours, theirs)
    assert_close(W.T, layer.weight)
    assert_close(b, layer.bias)


# --- the training run, its mistakes, the playground -------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_training_reaches_83_percent_with_a_few_points_of_wobble(seed):
    history, _, _ = scratch_run(seed)
    assert not history.diverged and len(history.test_acc) == 10
    assert 0.82 < max(history.test_acc[-3:]) < 0.845, history.test_acc
    assert max(abs(a - b) for a, b in zip(history.test_acc, history.test_acc[1:])) < 0.05
    assert history.train_loss[0] > history.test_loss[0]      # epoch 1: averaged while learning


@pytest.mark.parametrize("seed", SEEDS)
def test_worst_mistakes_are_confident_and_most_mistakes_mix_up_tops(seed):
    _, W, b = scratch_run(seed)
    _, test_iter = load_fashion_mnist(BATCH_SIZE)
    confidence, predicted = softmax(linear(test_iter.X, W, b)).max(dim=1)
    wrong = (predicted != test_iter.y).nonzero().squeeze(1)
    worst = wrong[confidence[wrong].argsort(descending=True)][:16]
    assert confidence[worst].min() > 0.95
    assert (confidence[worst].diff() <= 0).all()                # sorted, worst first
    tops = torch.tensor([TEXT_LABELS.index(n) for n in ("t-shirt", "pullover", "coat", "shirt")],
                        device=test_iter.y.device)
    between = torch.isin(test_iter.y[wrong], tops) & torch.isin(predicted[wrong], tops)
    assert between.float().mean() > 0.5
    # exercise 3: sure (confidence > 0.9) means nearly always right; the rest much less so
    correct = predicted == test_iter.y
    sure = confidence > 0.9
    assert correct[sure].float().mean() > 0.97                       # "over 97 %"
    assert 0.65 < correct[~sure].float().mean() < 0.75                 # "about 70 %"
    assert 0.35 < sure.float().mean() < 0.65                    # "about half"
    # exercise 4: each class's mean test image scores highest with its own template
    means = torch.stack([test_iter.X[test_iter.y == j].mean(dim=0) for j in range(10)])
    assert linear(means, W, b).argmax(dim=1).tolist() == list(range(10))


@pytest.mark.parametrize("seed", SEEDS)
def test_lr_half_overshoots_where_lr_a_tenth_does_not(seed):
    slow, _, _ = scratch_run(seed)
    fast = train_softmax_regression(lr=0.5, batch_size=BATCH_SIZE, num_epochs=10, seed=seed)
    assert not fast.diverged and len(fast.train_loss) == 10
    # the training losses, read from the printout (a ghost shows only its test curves):
    # "higher in every epoch, by about 0.3 or more"
    gaps = [a - b for a, b in zip(fast.train_loss, slow.train_loss)]
    assert 0.25 < min(gaps) < 0.35, gaps
    # the test loss "jumps up and down, by more than 0.3 several times", lr 0.1's "never by 0.1"
    steps = [b - a for a, b in zip(fast.test_loss, fast.test_loss[1:])]
    assert sum(abs(d) > 0.3 for d in steps) >= 3, fast.test_loss
    assert max(steps) > 0.3 and min(steps) < -0.3, fast.test_loss       # up and down
    calm = max(abs(a - b) for a, b in zip(slow.test_loss, slow.test_loss[1:]))
    assert calm < 0.1, slow.test_loss
    assert max(a - b for a, b in zip(slow.test_acc, fast.test_acc)) > 0.05


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("batch_size", [64, 256, 1024])
def test_the_playground_at_lr_10_diverges(seed, batch_size):
    history = train_softmax_regression(lr=10.0, batch_size=batch_size, num_epochs=3, seed=seed)
    assert history.diverged and "diverged" in history.message


# --- exercise 2: forgetting to zero the gradients ---------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_forgetting_to_zero_the_gradients_is_faster_at_first_then_steps_never_shrink(seed):
    right_trace, forgot_trace = {}, {}
    right = written_out_loop(seed, num_train=5_000, num_epochs=3, trace=right_trace)
    forgot = written_out_loop(seed, num_train=5_000, num_epochs=3, zero_grads=False,
                              trace=forgot_trace)
    per_epoch = len(right_trace["steps"]) // 3
    right_steps, forgot_steps = right_trace["steps"], forgot_trace["steps"]
    assert forgot[0] < right[0]                                  # faster in epoch 1
    assert not forgot[-1] < right[-1] + 0.2                      # higher by epoch 3, or nan
    assert forgot_steps[4] > 2 * forgot_steps[0]                 # the summed steps grow...
    assert forgot_steps[per_epoch * 2 - 1] > 5 * right_steps[per_epoch * 2 - 1]   # as printed
    last_of_epoch = [right_steps[per_epoch * k - 1] for k in (2, 3)]
    assert all(0.03 < s < 0.15 for s in last_of_epoch), last_of_epoch            # "about 0.1"
    finite = [s for s in forgot_steps[5:] if math.isfinite(s)]
    assert all(0.45 < s < 0.75 for s in finite), finite          # ...and stay "near 0.6"
    if seed == 0:
        assert math.isfinite(forgot[-1])                         # the notebook's run: no nan


def test_forgetting_to_zero_with_seed_1_ends_in_nan_from_an_overflowing_gradient():
    trace = {}
    forgot = written_out_loop(1, num_train=5_000, num_epochs=3, zero_grads=False, trace=trace)
    assert math.isnan(forgot[-1])
    loss, p_true = trace["first_bad"]
    assert math.isfinite(loss)                        # the loss itself was still a number,
    assert p_true < 1 / torch.finfo(torch.float32).max   # but d(-log p)/dp = -1/p overflows
