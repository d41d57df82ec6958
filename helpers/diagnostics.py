"""Network health: what each layer does to one fixed batch, before and during training.

A deep network can be broken before it learns anything: its activations shrink to zero or
blow up layer after layer, units saturate or die, and the gradient that reaches the first
layers is too small to move them. These functions measure that on one batch, layer by
layer, and draw it, so a bad initialization shows up in a second instead of after a wasted
training run.

    stats = network_health(net, X, y)     # one LayerStats per layer of an nn.Sequential
    print(format_health(stats))           # the numbers, one line per layer
    plot_health(stats)                    # bars per layer: std, saturated/dead, gradients
    plot_distributions(stats)             # histograms of a few layers, side by side

During training, `update_data_ratios(net, lr)` after a backward pass (or
`recording_updater(net, optimizer, log)` as the updater of `helpers.train`) records how
big each step is next to the weights it changes; `plot_update_ratios(log)` draws it.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from helpers.plotting import DPI, LEGEND_FONT

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU,
               nn.Softplus, nn.Hardtanh)
TANH_SATURATED = 0.97       # |tanh(z)| above this: tanh'(z) < 0.06, the unit barely learns
SIGMOID_SATURATED = 0.03    # sigmoid(z) below this or above 1 - this: sigmoid'(z) < 0.03
HEALTHY_UPDATE_RATIO = -3   # log10(update / data): a step changes a weight by about 1/1000


@dataclass
class LayerStats:
    """What one layer of the network did to the batch; `None` where a number does not apply."""

    index: int                     # position of the layer in the nn.Sequential
    name: str                      # the layer's class name, e.g. "ReLU"
    kind: str                      # "activation", "weights" (has a weight matrix) or "other"
    mean: float                    # mean of the layer's output over the batch
    std: float                     # std of the layer's output over the batch
    saturated: float | None        # fraction of outputs in the flat tails (Tanh, Sigmoid)
    dead: float | None             # fraction of units that are 0 for every example (ReLU)
    grad_std: float | None         # std of d loss / d output (None without labels)
    grad_norm: float | None        # its L2 norm
    weight_std: float | None       # std of the layer's weight matrix (layers that have one)
    weight_grad_std: float | None  # std of d loss / d weight
    grad_data_ratio: float | None  # weight_grad_std / weight_std
    output: torch.Tensor = field(repr=False)              # the output itself (CPU, detached)
    output_grad: torch.Tensor | None = field(repr=False)  # d loss / d output (CPU) or None


def network_health(net, X, y=None, loss=None):
    """Run the batch `X` through the layers of `net` (an `nn.Sequential`) and measure each one.

    Returns one `LayerStats` per layer, in order. Forward statistics (mean, std, saturated,
    dead) need only `X`; with labels `y` it also backpropagates `loss(net(X), y)` (default:
    cross-entropy, averaged over the batch) and measures the gradient at every layer's output
    and at every weight matrix. The gradients are taken with `torch.autograd.grad`, so the
    parameters' `.grad` are left as they were. The net runs in the mode it is in: call
    `net.eval()` first to measure it without dropout.
    """
    loss = loss if loss is not None else nn.functional.cross_entropy
    with_grads = y is not None
    outputs = []
    with torch.set_grad_enabled(with_grads):
        h = X
        for layer in net:
            h = layer(h)
            outputs.append(h)
        if with_grads:
            output_grads, weight_grads = _gradients(net, outputs, loss(h, y).mean())
        else:
            output_grads = weight_grads = [None] * len(outputs)
    return [_layer_stats(i, layer, out, g_out, g_w)
            for i, (layer, out, g_out, g_w)
            in enumerate(zip(net, outputs, output_grads, weight_grads))]


def _gradients(net, outputs, value):
    """d value / d (each output) and d value / d (each weight matrix); None where there is none."""
    weights = [_weight(layer) for layer in net]
    wanted = [t for t in outputs + weights if t is not None and t.requires_grad]
    found = dict(zip(map(id, wanted), torch.autograd.grad(value, wanted, allow_unused=True)))
    output_grads = [found.get(id(t)) for t in outputs]
    weight_grads = [found.get(id(w)) if w is not None else None for w in weights]
    return output_grads, weight_grads


def _weight(layer):
    """The layer's weight matrix (2 or more dimensions), or None."""
    w = getattr(layer, "weight", None)
    return w if isinstance(w, torch.Tensor) and w.ndim >= 2 else None


def _layer_stats(index, layer, out, out_grad, weight_grad):
    out = out.detach()
    kind = ("activation" if isinstance(layer, ACTIVATIONS)
            else "weights" if _weight(layer) is not None else "other")
    saturated = dead = None
    if isinstance(layer, nn.Tanh):
        saturated = _fraction(out.abs() > TANH_SATURATED)
    elif isinstance(layer, nn.Sigmoid):
        saturated = _fraction((out < SIGMOID_SATURATED) | (out > 1 - SIGMOID_SATURATED))
    elif isinstance(layer, nn.ReLU):
        units = out.reshape(len(out), -1)            # one column per unit
        dead = _fraction((units == 0).all(dim=0))    # zero for every example of the batch
    weight = _weight(layer)
    weight_std = weight_grad_std = ratio = None
    if weight is not None:
        weight_std = _std(weight)
        if weight_grad is not None:
            weight_grad_std = _std(weight_grad)
            ratio = weight_grad_std / weight_std if weight_std > 0 else math.inf
    return LayerStats(
        index=index, name=type(layer).__name__, kind=kind,
        mean=_double(out).mean().item(), std=_std(out),
        saturated=saturated, dead=dead,
        grad_std=_std(out_grad) if out_grad is not None else None,
        grad_norm=_double(out_grad).norm().item() if out_grad is not None else None,
        weight_std=weight_std, weight_grad_std=weight_grad_std, grad_data_ratio=ratio,
        output=out.cpu(), output_grad=out_grad.detach().cpu() if out_grad is not None else None)


def _double(t):
    """`t` in double precision (on the CPU for Apple's MPS, which has no float64).

    Statistics are taken in double: in float32, squares overflow above 1e19 and underflow
    below 1e-19, exactly the sizes that exploding and vanishing networks reach.
    """
    t = t.detach()
    return (t.cpu() if t.device.type == "mps" else t).double()


def _std(t):
    return _double(t).std().item()


def _fraction(mask):
    return mask.float().mean().item()


def format_health(stats):
    """The numbers of `network_health` as a small table, one line per layer."""
    def num(v, fmt=".3g"):
        return "-" if v is None else format(v, fmt)

    def pct(v):
        return "-" if v is None else f"{100 * v:.0f}%"

    lines = [f"{'layer':<14}{'mean':>10}{'std':>10}{'saturated':>10}{'dead':>6}"
             f"{'grad std':>10}{'grad:data':>10}"]
    for s in stats:
        lines.append(f"{s.index:>2} {s.name:<11}{num(s.mean):>10}{num(s.std):>10}"
                     f"{pct(s.saturated):>10}{pct(s.dead):>6}{num(s.grad_std):>10}"
                     f"{num(s.grad_data_ratio):>10}")
    return "\n".join(lines)


def update_data_ratios(net, lr):
    """log10((lr * grad).std() / weight.std()) for every weight matrix of `net`.

    Call it after `backward()` and before the optimizer's step. With plain SGD, `lr * grad`
    is the step itself, so this says how much of a weight one step changes: around -3 (a
    thousandth) is a good pace; far below, those weights hardly move; above -1, each step
    rewrites a tenth of the weight, which is usually too much. Returns `{name: ratio}`.
    """
    ratios = {}
    for name, p in net.named_parameters():
        if p.ndim >= 2 and p.grad is not None:
            ratio = (lr * _double(p.grad)).std() / _double(p).std()
            ratios[name] = torch.log10(ratio).item()
    return ratios


def recording_updater(net, optimizer, log):
    """An updater for `helpers.train` that records the update:data ratios at every step.

    Before each `optimizer.step()` it appends `update_data_ratios(net, lr)` to the list
    `log` (lr read from the optimizer), then steps and zeroes the gradients.
    """
    def updater(batch_size):
        log.append(update_data_ratios(net, optimizer.param_groups[0]["lr"]))
        optimizer.step()
        optimizer.zero_grad()

    return updater


def plot_health(stats, *, title=""):
    """Four bar charts, one bar per layer, left to right from input to output.

    Top: the std of each activation layer's output, and the share of saturated (Tanh,
    Sigmoid) or dead (ReLU) units. Bottom: the gradient std at each activation layer's
    output, and the grad:data ratio of each weight matrix, both on a log scale. The std's
    y axis turns logarithmic when its bars span more than 100x.
    """
    acts = [s for s in stats if s.kind == "activation"] or stats
    weights = [s for s in stats if s.weight_std is not None]
    fig = Figure(figsize=(8.2, 5.0), dpi=DPI, layout="constrained")
    (ax_std, ax_bad), (ax_grad, ax_ratio) = fig.subplots(2, 2)
    label = f"{acts[0].name} layer" if len({s.name for s in acts}) == 1 else "layer"

    _bars(ax_std, [s.std for s in acts], "tab:blue")
    ax_std.set(title="activation std", xlabel=label)

    x = np.arange(1, len(acts) + 1)
    saturated = [s.saturated for s in acts]
    dead = [s.dead for s in acts]
    if any(v is not None for v in saturated):
        ax_bad.bar(x, [100 * (v or 0) for v in saturated], color="tab:orange",
                   label="saturated")
    if any(v is not None for v in dead):
        ax_bad.bar(x, [100 * (v or 0) for v in dead], color="tab:gray", label="dead")
    if all(v is None for v in saturated + dead):
        _note(ax_bad, f"not measured for {acts[0].name}")
    else:
        ax_bad.legend(fontsize=LEGEND_FONT, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax_bad.set(title="saturated or dead units (%)", xlabel=label, ylim=(0, 100),
               xlim=(0.3, len(acts) + 0.7))

    if all(s.grad_std is None for s in acts):
        _note(ax_grad, "no gradients: pass labels y")
    else:
        _bars(ax_grad, [s.grad_std for s in acts], "tab:red", log=True)
    ax_grad.set(title="gradient std at the activations", xlabel=label)

    if weights and any(s.grad_data_ratio is not None for s in weights):
        _bars(ax_ratio, [s.grad_data_ratio for s in weights], "tab:purple", log=True)
    else:
        _note(ax_ratio, "no gradients: pass labels y" if weights else "no weight matrices")
    ax_ratio.set(title="weights: grad std / weight std", xlabel="weight matrix")
    for ax in (ax_std, ax_bad, ax_grad, ax_ratio):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    return fig


def _bars(ax, values, color, log=False):
    """Bars at 1..n; log scale if `log` or the values span over 100x; inf/nan marked in red."""
    values = np.array([np.nan if v is None else v for v in values], dtype=float)
    x = np.arange(1, len(values) + 1)
    finite = np.isfinite(values)
    positive = values[finite & (values > 0)]
    ax.bar(x[finite], values[finite], color=color)
    if len(positive) and (log or positive.max() / positive.min() > 100):
        ax.set_yscale("log")   # at least two decades shown, so that small differences look small
        ax.set_ylim(positive.min() / 10, positive.max() * 10)
    for xi in x[~finite]:
        ax.text(xi, 0.5, "inf/nan", transform=ax.get_xaxis_transform(), rotation=90,
                ha="center", va="center", color="tab:red", fontsize=LEGEND_FONT)
    ax.set_xlim(0.3, len(values) + 0.7)


def _note(ax, text):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def plot_distributions(stats, *, max_layers=5, title=""):
    """Histograms of the outputs (top row) and their gradients (bottom row), side by side.

    Shows up to `max_layers` activation layers, evenly spaced from the first to the last.
    Each panel has its own x range, so read the scale from its title (the std); the bars
    of `plot_health` compare the scales across layers.
    """
    acts = [s for s in stats if s.kind == "activation"] or stats
    picks = sorted({round(i) for i in np.linspace(0, len(acts) - 1, min(max_layers, len(acts)))})
    with_grads = any(acts[i].output_grad is not None for i in picks)
    fig = Figure(figsize=(min(8.2, 1.55 * len(picks) + 0.6), 4.4 if with_grads else 2.4),
                 dpi=DPI, layout="constrained")
    axes = np.array(fig.subplots(2 if with_grads else 1, len(picks), squeeze=False))
    for col, i in enumerate(picks):
        s = acts[i]
        note = (f", {100 * s.saturated:.0f}% sat." if s.saturated is not None else
                f", {100 * s.dead:.0f}% dead" if s.dead is not None else "")
        _histogram(axes[0, col], s.output, "tab:blue")
        axes[0, col].set_title(f"{s.name} {i + 1}\nstd {s.std:.2g}{note}", fontsize=LEGEND_FONT)
        if with_grads:
            _histogram(axes[1, col], s.output_grad, "tab:red")
            axes[1, col].set_title(f"gradient\nstd {s.grad_std:.2g}", fontsize=LEGEND_FONT)
    axes[0, 0].set_ylabel("outputs")
    if with_grads:
        axes[1, 0].set_ylabel("gradients")
    if title:
        fig.suptitle(title)
    return fig


def _histogram(ax, values, color):
    values = values.flatten().float().numpy()
    values = values[np.isfinite(values)]
    if len(values):
        ax.hist(values, bins=50, color=color)
    else:
        _note(ax, "inf/nan")
    ax.set_yticks([])
    ax.xaxis.set_major_locator(MaxNLocator(3))   # three 10-pt ticks fit a narrow panel


def plot_update_ratios(log, *, title=""):
    """The update:data ratio of every weight matrix over training steps, guide line at -3.

    `log` is a list with one `{name: log10 ratio}` per step, as `update_data_ratios` returns
    (or as `recording_updater` collects). Lines are coloured from the first weight (dark) to
    the last (light).
    """
    names = list(log[0]) if log else []
    fig = Figure(figsize=(7, 3), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    norm = Normalize(vmin=1, vmax=max(len(names), 2))
    for k, name in enumerate(names, start=1):
        values = np.array([step.get(name, np.nan) for step in log], dtype=float)
        values[~np.isfinite(values)] = np.nan
        ax.plot(values, color=cmap(norm(k)), lw=1, label=name if len(names) <= 6 else None)
    ax.axhline(HEALTHY_UPDATE_RATIO, color="black", ls="--", lw=1)
    ax.annotate("-3: a healthy pace", (0.01, HEALTHY_UPDATE_RATIO), xytext=(0, 3),
                xycoords=ax.get_yaxis_transform(), textcoords="offset points",
                fontsize=LEGEND_FONT)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, HEALTHY_UPDATE_RATIO - 0.5), max(high, HEALTHY_UPDATE_RATIO + 0.5))
    if len(names) > 6:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="weight matrix")
    elif names:
        ax.legend(fontsize=LEGEND_FONT, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set(xlabel="training step", ylabel="log10(update std / weight std)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig
