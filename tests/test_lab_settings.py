"""`make lab` opens JupyterLab without the news pop-up, through project-local settings only.

We start the real `make lab` target (no browser, a free port, no token) with an empty user
settings folder, ask the server for the notification plugin's settings, and check that the
project's defaults arrived: no news, no update check. The user's own configuration is not
touched: the project folder is added to `JUPYTER_CONFIG_PATH` and nothing is written.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "@jupyterlab/apputils-extension:notification"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_lab(tmp_path):
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    env.pop("JUPYTER_CONFIG_PATH", None)
    args = (f"--allow-root --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
            "--ServerApp.port_retries=0 --IdentityProvider.token= --ServerApp.password=")
    log = open(tmp_path / "lab.log", "wb")
    process = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def get_json(url, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_make_lab_turns_off_the_news_popup_and_update_check(make_lab):
    url, tmp_path = make_lab
    reply = get_json(f"{url}/lab/api/settings/{PLUGIN}")
    defaults = {k: v.get("default") for k, v in reply["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false", (tmp_path / "lab.log").read_text()[-2000:]
    assert defaults["checkForUpdates"] is False
    assert reply["raw"] in ("{}", "") and not (tmp_path / "user-settings" / "@jupyterlab").exists()
