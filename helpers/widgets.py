"""A playground: sliders and a Train button that re-run a training function and redraw live.

Sliders act when they are released, not while they are dragged, so one drag in class
starts one run or one redraw, not a queue of them.
"""

import time

import ipywidgets as widgets

from helpers.plotting import LivePlot, figure_to_png
from helpers.training import History

BATCH_SIZES = [2**k for k in range(4, 13)]   # 16 ... 4096
MAX_GHOSTS = 4                               # earlier runs kept faintly on the plot
SLOW_REDRAW_S = 0.3                          # slower than this: say "drawing..." first


def training_controls(train_fn, *, lr=0.1, batch_size=256, num_epochs=10, **knobs):
    """Sliders for `lr`, `batch_size`, `num_epochs` and any `knobs`, plus a Train button.

    Pressing Train calls `train_fn(lr=..., batch_size=..., num_epochs=..., **knobs,
    plot=...)`; `train_fn` passes `plot` on to `helpers.train`, which draws every epoch
    into this box. So `train_fn` needs a `plot` parameter and should return the History.

    A knob is given as a widget, a `(min, max, step)` or `(min, max, step, start)` tuple
    (a slider), or a list of choices (a dropdown). Earlier runs stay on the plot, faintly,
    labelled with their settings. Errors raised by `train_fn` become a one-line message.
    The kernel's interrupt button (■) stops a run cleanly: the epochs done so far stay on
    the plot and join the earlier runs, and the status says where it stopped.
    """
    controls = {
        "lr": widgets.FloatLogSlider(value=lr, base=10, min=-3, max=1, step=0.1,
                                     description="lr", readout_format=".3g",
                                     continuous_update=False),
        "batch_size": widgets.SelectionSlider(options=BATCH_SIZES,
                                              value=_nearest(batch_size, BATCH_SIZES),
                                              description="batch size", continuous_update=False),
        "num_epochs": widgets.IntSlider(value=num_epochs, min=1, max=50, description="epochs",
                                        continuous_update=False),
    }
    for name, spec in knobs.items():
        controls[name] = _knob_widget(name, spec)
    for control in controls.values():
        control.style.description_width = "90px"
    button = widgets.Button(description="Train", button_style="primary", icon="play")
    progress = widgets.IntProgress(value=0, min=0, max=num_epochs, description="progress")
    status = widgets.Label(value="Press Train to start.")
    config = widgets.HTML(value="")
    # hidden until the first run: an empty Image would show as a broken-image icon
    image = widgets.Image(format="png", layout=_natural_size(display="none"))
    past_runs = []

    def on_click(_button):
        button.disabled = True
        image.layout.display = None
        values = {name: control.value for name, control in controls.items()}
        call = f"{train_fn.__name__}({_short_label(values, '.4g')})"
        config.value = f"<code>{call}</code>"
        status.value = "training... to stop, press ■ (interrupt the kernel)"
        plot = LivePlot(values["num_epochs"], ghosts=past_runs[-MAX_GHOSTS:], image=image,
                        progress=progress, status=status)
        try:
            history = train_fn(**values, plot=plot)
            if history is not None:
                past_runs.append((_short_label(values), history))
        except KeyboardInterrupt:    # the stop button: keep what was done, say where it ended
            _stopped(plot, values["num_epochs"], past_runs, _short_label(values))
        except Exception as error:   # a student's experiment must never end in a traceback
            status.value = f"error: {type(error).__name__}: {error}"
        finally:
            button.disabled = False

    button.on_click(on_click)
    sliders = widgets.GridBox(list(controls.values()),
                              layout=widgets.Layout(grid_template_columns="repeat(2, 360px)"))
    return widgets.VBox([sliders, widgets.HBox([button, progress]), status, config, image])


def _stopped(plot, num_epochs, past_runs, label):
    """After an interrupt: the run so far joins the earlier runs, and the plot and status
    say "stopped at epoch k of n"."""
    history = plot.history or History(num_epochs=num_epochs)
    done = len(history.train_loss)
    history.message = f"stopped at epoch {done} of {num_epochs}"
    plot.update(history)
    if done:
        past_runs.append((label, history))


def figure_controls(draw_fn, **knobs):
    """Knobs that redraw a figure: `draw_fn(**values)` returns a `Figure`, shown below them.

    Knobs are given as in `training_controls` (a widget, a slider tuple, or a list of
    choices). The figure is redrawn when a knob is released; while a slow figure (the last
    one took over `SLOW_REDRAW_S`) is drawn, the status says "drawing...". An error in
    `draw_fn` shows as a one-line message instead of a traceback.
    """
    controls = {name: _knob_widget(name, spec) for name, spec in knobs.items()}
    image = widgets.Image(format="png", layout=_natural_size())
    status = widgets.Label(value="")
    last_seconds = [0.0]

    def redraw(_change=None):
        if last_seconds[0] > SLOW_REDRAW_S:
            status.value = "drawing..."
        start = time.perf_counter()
        try:
            image.value = figure_to_png(draw_fn(**{k: c.value for k, c in controls.items()}))
            status.value = ""
        except Exception as error:   # keep exploring possible whatever the knob says
            status.value = f"error: {type(error).__name__}: {error}"
        except KeyboardInterrupt:
            status.value = "stopped: the figure was not redrawn"
        last_seconds[0] = time.perf_counter() - start

    for control in controls.values():
        control.style.description_width = "90px"
        control.observe(redraw, names="value")
    redraw()
    knobs_row = widgets.HBox(list(controls.values()),
                             layout=widgets.Layout(flex_flow="row wrap"))   # wraps when narrow
    return widgets.VBox([knobs_row, status, image])


def _knob_widget(name, spec):
    """A widget for one extra knob: a widget as is, a tuple as a slider, a list as a dropdown."""
    if isinstance(spec, widgets.ValueWidget):
        if not spec.description:
            spec.description = name
        if hasattr(spec, "continuous_update"):
            spec.continuous_update = False       # act on release, not on every dragged value
        return spec
    if isinstance(spec, list):
        return widgets.Dropdown(options=spec, value=spec[0], description=name)
    if isinstance(spec, tuple) and len(spec) in (3, 4):
        low, high, step = spec[:3]
        start = spec[3] if len(spec) == 4 else low
        kind = widgets.IntSlider if all(isinstance(v, int) for v in spec) else widgets.FloatSlider
        return kind(value=start, min=low, max=high, step=step, description=name,
                    continuous_update=False)
    raise ValueError(f"knob {name!r}: give a widget, a (min, max, step[, start]) tuple or a "
                     f"list of choices, not {spec!r}")


def _natural_size(**layout):
    """An image layout that shows the PNG pixel for pixel (not stretched to the box's width,
    which would blur it)."""
    return widgets.Layout(align_self="flex-start", **layout)


def _nearest(value, options):
    return min(options, key=lambda option: abs(option - value))


def _short_label(values, float_format=".3g"):
    """`lr=0.1, batch_size=256, ...`: the settings of a run, floats rounded for reading."""
    return ", ".join(f"{k}={v:{float_format}}" if isinstance(v, float) else f"{k}={v!r}"
                     for k, v in values.items())
