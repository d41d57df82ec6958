"""The notebooks as students use them: JupyterLab 4 in a real (headless) Chromium.

For every notebook in `notebooks/` we open it in JupyterLab, run all cells from the Run
menu, wait until the kernel is idle, and check that no cell failed or wrote to stderr and
that every playground rendered its controls. For notebooks 03 and 06 we then play with
the first training playground like a student: move the epochs and learning-rate sliders
with the keyboard, press Train, and watch the button, the live plot and the status line.

The test starts its own JupyterLab (loopback only, no token, a free port, settings in a
temporary folder) on a temporary copy of `notebooks/` with the outputs cleared, so the
stored notebooks are never touched, and stops it at the end. Nothing is downloaded: the
browser is Debian's `chromium` (override with `CHROMIUM_PATH`). Without it the tests are
skipped, unless `BROWSER_TEST_REQUIRED=1` (CI) turns that into a failure.

    .venv/bin/pytest -m browser -v -s tests/test_browser.py
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(os.environ.get("BROWSER_TEST_NOTEBOOKS", ROOT / "notebooks"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
]
DRIVEN = ("00", "06")          # playgrounds driven like a student: the first, and one with a knob
PROJECTOR = {"width": 1280, "height": 720}   # what a classroom projector shows
SCREENSHOTS = os.environ.get("BROWSER_TEST_SCREENSHOTS")   # keep them here (default: tmp)
RUN_ALL_TIMEOUT_S = 300        # one notebook, all cells (budget: < 2 min on 2 cores)
TRAIN_TIMEOUT_S = 240          # one press of Train
PLAYGROUND_CALL = re.compile(r"^(?=\S)(?!from |import |def |class |#).*\b(training_controls|"
                             r"figure_controls)\(", re.MULTILINE)

pytestmark = pytest.mark.browser


def _notebook_paths():
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("."))


def _require_browser():
    """Skip (or, with BROWSER_TEST_REQUIRED=1, fail) when Playwright or Chromium is missing."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "Python package `playwright` is not installed (pip install -e '.[test]')"
    if problem is None and not os.access(CHROMIUM, os.X_OK):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    if problem:
        if os.environ.get("BROWSER_TEST_REQUIRED"):
            pytest.fail(problem)
        pytest.skip(problem)


# --------------------------------------------------------------------------- the server

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_notebooks(dest):
    """Copy `notebooks/` to `dest` with every output cleared (the run must produce them)."""
    shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for path in dest.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)


def _write_settings(settings_dir):
    """User settings: every cell in the DOM (no windowing). No news pop-up or update check
    comes from the project's own defaults (`jupyter/labconfig`), as with `make lab`."""
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    """A JupyterLab server on a temporary copy of the notebooks, and helpers to talk to it."""

    def __init__(self, base_dir):
        self.root = base_dir / "notebooks"
        _copy_notebooks(self.root)
        _write_settings(base_dir / "settings")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HELPERS_DEVICE="cpu",
                   JUPYTERLAB_SETTINGS_DIR=str(base_dir / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(base_dir / "workspaces"),
                   JUPYTER_CONFIG_DIR=str(base_dir / "config"),
                   JUPYTER_CONFIG_PATH=str(ROOT / "jupyter"),
                   JUPYTER_DATA_DIR=str(base_dir / "data"),
                   JUPYTER_RUNTIME_DIR=str(base_dir / "runtime"))
        self.log_path = base_dir / "jupyterlab.log"
        self._log = open(self.log_path, "wb")   # closed in stop()
        self.process = subprocess.Popen(  # stopped in stop(), also when it fails to start
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.port_retries=0", "--IdentityProvider.token=",
             "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
             f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"],
            cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            self._wait_until_up(timeout=120)
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("JupyterLab exited early:\n" + self.log_tail())
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer in {timeout} s:\n" + self.log_tail())

    def api(self, method, path):
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self, name):
        """End the session (and its kernel) of notebook `name`, so kernels do not pile up."""
        for session in self.api("GET", "/api/sessions"):
            if session["path"] == name:
                self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, lines=40):
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)   # the server shuts its kernels down
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)   # its own session, started above
                self.process.wait(timeout=10)
        self._log.close()


def _check_kernel_is_this_python(server):
    """The default kernel runs this venv's Python (jupyter_client swaps a bare `python` in a
    kernelspec for the server's own interpreter, which is ours)."""
    specs = server.api("GET", "/api/kernelspecs")
    argv = specs["kernelspecs"][specs["default"]]["spec"]["argv"]
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info)}
    ours = argv[0] in bare or Path(argv[0]).resolve() == Path(sys.executable).resolve()
    assert ours, f"the default kernel runs {argv[0]}, not {sys.executable}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    start = time.perf_counter()
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    print(f"\nJupyterLab up at {server.url} in {time.perf_counter() - start:.1f} s "
          f"(root: a cleared copy of {NOTEBOOKS})")
    try:
        _check_kernel_is_this_python(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# ------------------------------------------------------------------ opening and running

# The notebook's kernel has started and is idle (the indicator alone says "idle" before
# any kernel exists, and a Run All then would ask which kernel to start).
KERNEL_READY_JS = """() => {
  if (document.querySelector('.jp-Dialog')) return true;   // reported by problems()
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName');
  return !!indicator && indicator.dataset.status === 'idle' && !!name
    && name.textContent.trim() !== '' && name.textContent.trim() !== 'No Kernel';
}"""

# Done when a dialog opened (reported as a problem), or when the kernel is idle, no cell
# is queued or running ([*]), and the first code cell has run (so we do not mistake the
# moment before Run All for the end of it).
RUN_FINISHED_JS = """(firstCode) => {
  if (document.querySelector('.jp-Dialog')) return true;
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!indicator || indicator.dataset.status !== 'idle') return false;
  const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
  const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-InputPrompt'));
  if (prompts.some(p => p.textContent.includes('*'))) return false;
  const first = cells[firstCode] && cells[firstCode].querySelector('.jp-InputPrompt');
  return !!first && /\\[\\d+\\]/.test(first.textContent);
}"""

# Every output that went to stderr (warnings, tracebacks) and every error output.
PROBLEMS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],' +
    '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'))
  .filter((el, i, all) => !all.some(other => other !== el && other.contains(el)))
  .map(el => {
    const cell = el.closest('.jp-Cell');
    const index = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell')).indexOf(cell);
    return `cell ${index}: ${el.innerText.trim().slice(0, 1500)}`;
  })"""


class RunNotebook:
    """One notebook opened in its own page and run from the Run menu."""

    def __init__(self, lab, browser, path):
        self.lab, self.path, self.name = lab, path, path.name
        self.nb = nbformat.read(path, as_version=4)
        self.page_errors = []
        self.context = browser.new_context(viewport=PROJECTOR)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        start = time.perf_counter()
        try:
            workspace = re.sub(r"\W", "", path.stem)
            self.page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{self.name}?reset")
            self.wait_for(KERNEL_READY_JS, "the kernel to start", 120)
            self.cells_in_dom = self.page.locator(".jp-Notebook .jp-Cell").count()
            self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            self.page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
            first_code = next((i for i, c in enumerate(self.nb.cells)
                               if c.cell_type == "code" and c.source.strip()), None)
            if first_code is not None:
                self.wait_for(RUN_FINISHED_JS, "Run All to finish", RUN_ALL_TIMEOUT_S,
                              arg=first_code)
        except BaseException:
            self.close()
            raise
        self.seconds = time.perf_counter() - start

    def wait_for(self, js, what, timeout_s, arg=None):
        """Wait until `js` is true; on a timeout, fail with a screenshot and the server log."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000, polling=250)
        except PlaywrightTimeout:
            shot = self.lab.root.parent / f"timeout_{self.path.stem}_{time.time():.0f}.png"
            self.page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(
                f"{self.name}: waited {timeout_s} s for {what}; screenshot: {shot}\n"
                f"problems so far: {self.problems()}\n"
                f"JupyterLab log:\n{self.lab.log_tail()}") from None

    def cell(self, index):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def unexecuted_cells(self):
        """Indices of code cells (with code in them) that show no execution count. A collapsed
        cell shows no prompt; an error in it would still show in `problems()`."""
        prompts = self.page.locator(".jp-Notebook .jp-Cell").evaluate_all(
            "cells => cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent)")
        return [i for i, cell in enumerate(self.nb.cells)
                if cell.cell_type == "code" and cell.source.strip()
                and not cell.metadata.get("jupyter", {}).get("source_hidden")   # no prompt shown
                and not re.search(r"\[\d+\]", prompts[i] or "")]

    def problems(self):
        found = self.page.evaluate(PROBLEMS_JS)
        dialogs = self.page.locator(".jp-Dialog").all_inner_texts()
        return found + [f"dialog: {text.strip()[:300]}" for text in dialogs]

    def close(self):
        self.context.close()
        self.lab.shut_down_kernels(self.name)


@pytest.fixture(scope="module")
def run_notebook(lab, browser):
    """`run_notebook(path)`: open and run it once; later calls reuse the open page."""
    opened = {}

    def run(path):
        if path.name not in opened:
            opened[path.name] = RunNotebook(lab, browser, lab.root / path.name)
        return opened[path.name]

    def close(name):
        if name in opened:
            opened.pop(name).close()

    run.close, run.root = close, lab.root
    yield run
    for name in list(opened):
        close(name)


# ------------------------------------------------------------------------ playgrounds

def _playground_cells(nb):
    """Indices of code cells that call `training_controls(` / `figure_controls(` at top level."""
    found = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            calls = {m.group(1) for m in PLAYGROUND_CALL.finditer(cell.source)}
            if calls:
                found[i] = calls
    return found


def _training_playgrounds(scope):
    """The rendered `training_controls` boxes (a VBox with a Train button) inside `scope`."""
    train_button = scope.page.locator("button.widget-button", has_text=re.compile(r"^\s*Train\s*$"))
    return scope.locator(".widget-vbox").filter(
        has=scope.page.locator(":scope > .widget-hbox").filter(has=train_button))


def _slider(box, label):
    return box.locator(".widget-slider").filter(
        has=box.page.locator("label.widget-label", has_text=re.compile(rf"^{label}$")))


def _status(box):
    return box.locator(":scope > .widget-label").inner_text().strip()


def _check_training_playground(box):
    """Its three sliders, the Train button (enabled), the progress bar and the image."""
    problems = []
    for label in ("lr", "batch size", "epochs"):
        if _slider(box, label).locator("[role=slider]").count() != 1:
            problems.append(f"no '{label}' slider")
    button = box.locator("button.widget-button", has_text="Train")
    if button.count() != 1 or not button.is_visible() or not button.is_enabled():
        problems.append("no visible, enabled Train button")
    if box.locator(".widget-hprogress").count() != 1:
        problems.append("no progress bar")
    if box.locator("img.widget-image").count() != 1:
        problems.append("no plot image")
    status = _status(box)
    if status.startswith("error:") or "Traceback" in status:
        problems.append(f"status says {status!r}")
    return problems


def _check_figure_playground(output):
    """`figure_controls`: at least one knob and a drawn image, no error in its status line."""
    problems = []
    box = output.locator(".widget-vbox").filter(has=output.page.locator("img.widget-image"))
    if box.count() == 0:
        return ["no figure_controls box (knobs + image) rendered"]
    box = box.first
    if box.locator(".widget-slider, .widget-dropdown, .widget-toggle-buttons, "
                   ".widget-checkbox, .widget-radio, .widget-text").count() == 0:
        problems.append("no knobs")
    if box.locator("img.widget-image").evaluate("img => img.naturalWidth") == 0:
        problems.append("the figure was not drawn")
    status = " ".join(box.locator(":scope > .widget-label").all_inner_texts())
    if "error:" in status or "Traceback" in status:
        problems.append(f"status says {status!r}")
    return problems


def _screenshot(locator, path):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        path = Path(SCREENSHOTS) / path.name
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    print(f"  screenshot: {path}")


def _image_is_at_natural_size(box):
    """The plot is shown pixel for pixel: no CSS scaling (which blurs it or shrinks text)."""
    size = box.locator("img.widget-image").evaluate(
        "img => [img.naturalWidth, img.clientWidth, img.naturalHeight, img.clientHeight]")
    assert size[0] > 0 and size[0] == size[1] and size[2] == size[3], (
        f"plot drawn {size[0]}x{size[2]} px but shown {size[1]}x{size[3]} px")


# ------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("path", _notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab(path, run_notebook, tmp_path):
    run = run_notebook(path)
    print(f"\n{path.name}: Run All finished in {run.seconds:.1f} s")
    try:
        assert run.cells_in_dom == len(run.nb.cells), (
            f"{run.cells_in_dom} of {len(run.nb.cells)} cells in the page: windowing is on")
        problems = run.problems()
        assert not problems, "errors or stderr output:\n" + "\n".join(problems)
        unexecuted = run.unexecuted_cells()
        assert not unexecuted, f"code cells that did not run: {unexecuted}"

        expected = _playground_cells(run.nb)
        for index, calls in expected.items():
            output = run.cell(index).locator(".jp-OutputArea")
            if "training_controls" in calls:
                boxes = _training_playgrounds(output)
                assert boxes.count() >= 1, f"cell {index}: no training playground rendered"
                for k in range(boxes.count()):
                    problems = _check_training_playground(boxes.nth(k))
                    assert not problems, f"cell {index}: {'; '.join(problems)}"
                    _screenshot(boxes.nth(k), tmp_path / f"{path.stem}_cell{index}_{k}.png")
            if "figure_controls" in calls:
                problems = _check_figure_playground(output)
                assert not problems, f"cell {index}: {'; '.join(problems)}"
                _screenshot(output, tmp_path / f"{path.stem}_cell{index}_figure.png")
        rendered = _training_playgrounds(run.page.locator(".jp-Notebook")).count()
        wanted = sum("training_controls" in calls for calls in expected.values())
        assert rendered >= wanted, f"{rendered} training playgrounds rendered, {wanted} expected"
        print(f"  {len(run.nb.cells)} cells, {len(expected)} playground cell(s) checked")
    finally:
        if run.page_errors:
            print("  page errors (not failing the test):", *run.page_errors, sep="\n    ")
        if not path.name.startswith(DRIVEN):
            run_notebook.close(path.name)


# Records, on the page, what a playground does after we press Train: the button's
# `disabled` changes, every new plot image the kernel sends (the <img> gets a new blob
# URL), and a hash of the pixels of every plot image that loads.
WATCH_JS = """(box) => {
  const button = box.querySelector('button.widget-button');
  const img = box.querySelector('img.widget-image');
  const log = [];
  const hash = () => {
    if (!img.naturalWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 2166136261;
    for (let i = 0; i < data.length; i += 1) h = Math.imul(h ^ data[i], 16777619) >>> 0;
    return h;
  };
  const before = hash();
  const onLoad = () => log.push({kind: 'image', hash: hash()});
  img.addEventListener('load', onLoad);
  const observer = new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.target === img) { log.push({kind: 'src'}); continue; }
      const disabled = button.disabled;
      const last = log.filter(e => e.kind === 'button').pop();
      if (!last || last.disabled !== disabled) log.push({kind: 'button', disabled});
    }
  });
  observer.observe(button, {attributes: true, attributeFilter: ['disabled']});
  observer.observe(img, {attributes: true, attributeFilter: ['src']});
  window.__playground = {
    before, log,
    finished: () => {
      const states = log.filter(e => e.kind === 'button').map(e => e.disabled);
      const on = states.indexOf(true);
      return on >= 0 && states.slice(on + 1).includes(false);
    },
    stop: () => { observer.disconnect(); img.removeEventListener('load', onLoad); },
  };
}"""


def _press_keys(handle, *keys):
    handle.focus()
    for key in keys:
        handle.press(key)


def _train_and_watch(run, box):
    """Press Train, wait until the button has disabled and enabled again; return the log."""
    box.evaluate(WATCH_JS)
    box.locator("button.widget-button", has_text="Train").click()
    run.wait_for("() => window.__playground.finished()",
                 "the Train button to disable and enable again", TRAIN_TIMEOUT_S)
    box.page.wait_for_timeout(500)   # let the last image finish loading
    record = box.page.evaluate(
        "() => { window.__playground.stop();"
        " return {before: window.__playground.before, log: window.__playground.log}; }")
    return record


def _button_states(record):
    states = [e["disabled"] for e in record["log"] if e["kind"] == "button"]
    return " -> ".join("disabled" if d else "enabled" for d in states)


def _config(box):
    """The call the kernel actually made, from the playground's config line."""
    text = box.locator(".widget-html-content").inner_text()
    values = dict(re.findall(r"(\w+)=([^,)]+)", text))
    return text, values


def _drive_playground(run, box, tmp_path):
    box.scroll_into_view_if_needed()
    epochs = _slider(box, "epochs").locator("[role=slider]")
    lr = _slider(box, "lr").locator("[role=slider]")
    lr_readout = _slider(box, "lr").locator(".widget-readout")

    # 1. A sensible run: a few epochs, the learning rate one notch lower.
    target_epochs = 3 if epochs.get_attribute("aria-valuenow") not in ("3", "3.0") else 4
    _press_keys(epochs, "Home", *["ArrowRight"] * (target_epochs - 1))
    assert _slider(box, "epochs").locator(".widget-readout").inner_text().strip() == \
        str(target_epochs)
    exponent = float(lr.get_attribute("aria-valuenow"))
    _press_keys(lr, "ArrowLeft")
    expected_lr = 10 ** (exponent - 0.1)
    assert float(lr_readout.inner_text()) == pytest.approx(expected_lr, rel=0.01)

    record = _train_and_watch(run, box)
    call, values = _config(box)
    print(f"  trained: {call}\n  status: {_status(box)}")
    assert int(values["num_epochs"]) == target_epochs, f"the kernel got {call}"
    # the config line shows floats to 4 significant digits
    assert float(values["lr"]) == pytest.approx(expected_lr, rel=1e-3), f"the kernel got {call}"
    new_images = sum(e["kind"] == "src" for e in record["log"])
    assert new_images >= 2, f"{new_images} plot update(s) reached the page: not live"
    images = [e["hash"] for e in record["log"] if e["kind"] == "image" and e["hash"] is not None]
    changes = sum(1 for a, b in zip([record["before"], *images], images) if a != b)
    assert changes >= 2, f"the drawn plot changed {changes} time(s) during training: not live"
    print(f"  {new_images} plot updates, {changes} visible changes; "
          f"button {_button_states(record)}")
    buttons = [e["disabled"] for e in record["log"] if e["kind"] == "button"]
    assert buttons[:1] == [True] and buttons[-1] is False, f"button states: {buttons}"
    assert box.locator("button.widget-button", has_text="Train").is_enabled()
    status = _status(box)
    assert not status.startswith("error:") and "Traceback" not in status, status
    _image_is_at_natural_size(box)
    _screenshot(box, tmp_path / f"{run.path.stem}_playground_trained.png")

    # 2. An absurd learning rate (the slider's maximum): the status must say what went wrong.
    _press_keys(lr, "End")
    assert float(lr_readout.inner_text()) == pytest.approx(10.0)
    record = _train_and_watch(run, box)
    call, values = _config(box)
    status = _status(box)
    print(f"  absurd: {call}\n  status: {status}")
    assert float(values["lr"]) == pytest.approx(10.0), f"the kernel got {call}"
    assert re.search(r"diverged|not learning", status), f"status after lr=10: {status!r}"
    assert "Traceback" not in status and not status.startswith("error:"), status
    assert box.locator("button.widget-button", has_text="Train").is_enabled()
    _screenshot(box, tmp_path / f"{run.path.stem}_playground_absurd_lr.png")
    problems = run.problems()
    assert not problems, "errors or stderr output:\n" + "\n".join(problems)


@pytest.mark.parametrize("prefix", DRIVEN)
def test_student_drives_playground(prefix, run_notebook, tmp_path):
    matches = [p for p in _notebook_paths() if p.name.startswith(prefix)]
    if not matches:
        print(f"\nno notebook {prefix}_*.ipynb in {NOTEBOOKS}: nothing to drive")
        pytest.skip(f"notebook {prefix}_*.ipynb does not exist (yet)")
    path = matches[0]
    if not (run_notebook.root / path.name).exists():
        pytest.skip(f"{path.name} appeared after JupyterLab started; run the tests again")
    try:
        run = run_notebook(path)
        problems = run.problems()
        assert not problems, "errors or stderr output:\n" + "\n".join(problems)
        boxes = _training_playgrounds(run.page.locator(".jp-Notebook"))
        assert boxes.count() >= 1, f"{path.name} has no training playground to drive"
        print(f"\n{path.name}: driving the first of {boxes.count()} training playground(s)")
        start = time.perf_counter()
        _drive_playground(run, boxes.first, tmp_path)
        print(f"  driven in {time.perf_counter() - start:.1f} s")
    finally:
        run_notebook.close(path.name)


# ------------------------------------------------------------------ presenting in class

PRESENTED = os.environ.get("BROWSER_TEST_PRESENTED", "00")   # the notebook a teacher projects


def _view_appearance(page, command):
    """View > Appearance > the item that runs `command` (as a teacher would click it)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^View$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^\s*Appearance")).first.hover()
    page.locator(f".lm-Menu-item[data-command='{command}']").first.click()
    page.wait_for_timeout(300)


def _fully_on_screen(locator, viewport):
    """True if the element lies inside the viewport and nothing covers its centre."""
    box = locator.bounding_box()
    if box is None:
        return False, "not rendered"
    inside = (box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"]
              and box["y"] + box["height"] <= viewport["height"])
    on_top = locator.evaluate("""el => {
        const r = el.getBoundingClientRect();
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !!hit && (el === hit || el.contains(hit));
    }""")
    return inside and on_top, f"box {box}, on top: {on_top}"


def test_teacher_presents_a_playground_in_presentation_mode(run_notebook, tmp_path):
    """JupyterLab's own Presentation Mode with the simple interface and the side bar closed,
    at 1280x720: the playground works there (Train redraws the plot) and its controls, its
    status line and its whole figure are on screen together, without scrolling."""
    matches = [p for p in _notebook_paths() if p.name.startswith(PRESENTED)]
    if not matches:
        pytest.skip(f"notebook {PRESENTED}_*.ipynb does not exist (yet)")
    run = run_notebook(matches[0])
    page = run.page
    try:
        _view_appearance(page, "application:toggle-mode")                 # simple interface
        _view_appearance(page, "application:toggle-presentation-mode")
        if page.locator("#jp-left-stack").is_visible():
            _view_appearance(page, "application:toggle-left-area")        # close the side bar
        assert page.locator("body[data-presentation-mode='true'], .jp-mod-presentationMode"
                            ).count() >= 1 or page.evaluate(
            "() => document.body.dataset.presentationMode") == "true", "not in Presentation Mode"
        assert not page.locator("#jp-left-stack").is_visible(), "the side bar is still open"
        box = _training_playgrounds(page.locator(".jp-Notebook")).first
        box.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        record = _train_and_watch(run, box)
        images = [e for e in record["log"] if e["kind"] == "image" and e["hash"] is not None]
        assert images and images[-1]["hash"] != record["before"], "Train did not redraw the plot"
        box.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        parts = {"the sliders": box.locator(".widget-gridbox").first,
                 "the Train button": box.locator("button.widget-button", has_text="Train"),
                 "the status line": box.locator(":scope > .widget-label"),
                 "the figure": box.locator("img.widget-image")}
        shot = tmp_path / f"{run.path.stem}_presentation_mode.png"
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            shot = Path(SCREENSHOTS) / shot.name
        page.screenshot(path=str(shot))
        print(f"\n  status: {_status(box)}\n  screenshot: {shot}")
        for name, part in parts.items():
            ok, detail = _fully_on_screen(part, PROJECTOR)
            assert ok, f"{name} is not fully on screen at 1280x720 ({detail}); see {shot}"
        problems = run.problems()
        assert not problems, "errors or stderr output:\n" + "\n".join(problems)
    finally:
        run_notebook.close(matches[0].name)
