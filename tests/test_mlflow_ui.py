"""The MLflow UI, checked as a user would: a smoke run is opened in the browser and read back.

A training run with the tiny random model (evaluation on, so it also logs a submission and a plot) goes into a
temporary SQLite store; ``mlflow server`` serves that store on 127.0.0.1; headless Chromium (Debian's ``chromium``
package, driven by Playwright, no browser download) opens the run page and must show::

    Overview   run name, "Finished", run id; Parameters  lora.r | 32; Metrics  train/loss | <logged value>
    Artifacts  adapter/ evaluation/ config.yaml overrides.txt trained_outputs.json; previews of config.yaml,
               evaluation/submission.json and a plot PNG (rendered at its real size)

Screenshots land in the module's pytest tmp folder (``.../mlflow_ui0/overview.png``, ``artifacts.png``).
Without /usr/bin/chromium or playwright the tests are skipped, unless ``ARC_EXP_REQUIRE_UI=1`` (.ci/run sets it),
which turns the skip into a failure so CI cannot pass without looking.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pytest

from conftest import PYTHON, TINY, mlflow_runs, run_train

pytestmark = pytest.mark.ui

CHROMIUM = Path(os.environ.get("ARC_EXP_CHROMIUM", "/usr/bin/chromium"))
# Offline and quiet: no first-run UI, no update/sync/background calls; a fresh profile per test module
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXPERIMENT = "arc_exp-ui"
# The smallest run that still logs everything a user looks at: 2 steps, one 4x4 eval task, one prediction
SMOKE_OVERRIDES = (*TINY, f"logger.experiment_name={EXPERIMENT}", "trainer.max_steps=2", "trainer.val_check_interval=2",
                   "callbacks.checkpoint_every_n_steps=2", "data.val.first_n=1", "evaluation.enabled=true",
                   "evaluation.predictions_per_task=1", "augmentation=none", "data.eval.first_n=1",
                   "data.eval.max_grid_side=4", "inference.max_new_tokens=8")
# Open the UI as a model-training user who has seen it before: MLflow 3 starts in its "GenAI" view and opens an
# assistant side panel on the first visit (keys of the UI's useLocalStorage hook: "<key>_v<version>"). If a later
# MLflow renames them, only the screenshot changes: the checks below find the same pages either way.
UI_PREFERENCES = """
localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""
UI_TIMEOUT_MS = 60_000  # the React app's first render on a busy 2-core machine


@pytest.fixture(scope="module")
def browser_available():
    """Skip (or fail under ``ARC_EXP_REQUIRE_UI=1``) before any training when the browser cannot run here."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[ui-test]')")
    if missing:
        message = "the MLflow UI test needs " + " and ".join(missing)
        if os.environ.get("ARC_EXP_REQUIRE_UI") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def smoke_run(browser_available, tmp_path_factory):
    """One finished training run in a temporary store; its artifacts are files under the same folder."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow_ui")
    uri = f"sqlite:///{folder}/mlflow.db"
    # created before the run so its artifacts go to the tmp folder, not to ./mlruns of the working directory
    experiment_id = mlflow.MlflowClient(tracking_uri=uri).create_experiment(
        EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    run_train(folder / "run", [*SMOKE_OVERRIDES, f"logger.tracking_uri={uri}"])
    [run] = mlflow_runs(uri)
    assert (run.info.experiment_id, run.info.status) == (experiment_id, "FINISHED")
    return {"folder": folder, "uri": uri, "run": run, "output_dir": folder / "run"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(smoke_run):
    """``mlflow server`` on the store, on a free port of 127.0.0.1; yields its URL, stops its process group."""
    folder, port = smoke_run["folder"], free_port()
    command = [PYTHON, "-m", "mlflow", "server", "--backend-store-uri", smoke_run["uri"],
               "--artifacts-destination", str(folder / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    # the job runner would start eight task-queue processes the UI pages here never use; telemetry stays off
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    log_path = folder / "mlflow-server.log"
    with open(log_path, "w") as log:
        # a session of its own: the server forks uvicorn, and the whole group is stopped at the end
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(server, f"{url}/health", log_path, timeout=180)
        yield url
    finally:
        stop_process_group(server)


def wait_until_answers(server: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer {url} within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the group the process leads (it and its children), SIGKILL if it has not exited in 15 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
    try:  # a child that outlived its parent (uvicorn) is still in the group
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def page(smoke_run, mlflow_server):
    """A Playwright page in the system Chromium with a fresh profile; requests leave only to the local server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(smoke_run["folder"] / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
            headless=True, viewport={"width": 1600, "height": 1000})
        try:
            context.add_init_script(UI_PREFERENCES)
            # the test must not depend on (or call) anything but the server it started
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(mlflow_server)
                          else route.abort())
            browser_page = context.new_page()
            browser_page.set_default_timeout(UI_TIMEOUT_MS)
            yield browser_page
        finally:
            context.close()


def open_run_page(page, url: str, run) -> None:
    page.goto(f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.get_by_role("tab", name="Overview").wait_for()


def table_row(page, first_cell: str) -> list[str]:
    """The cells of the one table row (params, metrics) whose first cell reads ``first_cell``."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=first_cell, exact=True))
    row.wait_for()
    return row.get_by_role("cell").all_inner_texts()


def artifact_preview(page) -> str:
    preview = page.locator(".mlflow-ShowArtifactPage code")
    preview.wait_for()
    return preview.inner_text()


def logged_files(tracking_uri: str, run_id: str, folder: str) -> list[str]:
    """Every artifact file of a run under ``folder``, as MLflow paths (``evaluation/failures/4cd1b7b2-0.png``)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    files = []
    for info in client.list_artifacts(run_id, folder):
        files.extend(logged_files(tracking_uri, run_id, info.path) if info.is_dir else [info.path])
    return sorted(files)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_run_page_shows_the_run_its_params_and_metrics(page, smoke_run, mlflow_server):
    run = smoke_run["run"]
    open_run_page(page, mlflow_server, run)

    # the run: its name (the overrides that made it) as the heading, finished, its id
    assert page.get_by_test_id("runs-header").inner_text() == run.info.run_name
    assert run.info.run_name.startswith("augmentation=none,callbacks.checkpoint_every_n_steps=2,data.eval.first_n=1,")
    page.get_by_text("Finished", exact=True).first.wait_for()
    page.get_by_text(run.info.run_id, exact=True).first.wait_for()

    # a user narrows the tables with their search boxes
    page.get_by_placeholder("Search parameters").fill("lora.r")
    assert table_row(page, "lora.r") == ["lora.r", "32"]
    page.get_by_placeholder("Search metrics").fill("loss")
    # the last logged value, shown in full
    assert table_row(page, "train/loss") == ["train/loss", repr(run.data.metrics["train/loss"])]
    assert table_row(page, "val/loss") == ["val/loss", repr(run.data.metrics["val/loss"])]
    page.screenshot(path=str(smoke_run["folder"] / "overview.png"))


def test_artifacts_tab_shows_config_submission_and_a_plot(page, smoke_run, mlflow_server):
    run, output_dir = smoke_run["run"], smoke_run["output_dir"]
    open_run_page(page, mlflow_server, run)
    page.get_by_role("tab", name="Artifacts").click()
    nodes = page.get_by_test_id("artifact-tree-node")
    nodes.first.wait_for()
    assert nodes.all_inner_texts() == ["adapter", "evaluation", "config.yaml", "overrides.txt", "trained_outputs.json"]

    page.get_by_label("config.yaml", exact=True).click()
    assert artifact_preview(page).strip() == (output_dir / "config.yaml").read_text().strip()

    page.get_by_label("evaluation", exact=True).click()
    page.get_by_label("submission.json", exact=True).click()
    submission = json.loads(artifact_preview(page))
    assert submission == json.loads((output_dir / "evaluation" / "submission.json").read_text())
    assert list(submission) == ["4cd1b7b2"]  # the first ARC-1 evaluation task whose grids are all at most 4x4

    # a plot: the tiny random model gets the task wrong, so it is a failure plot; open its folders one by one
    [plot] = [path for path in logged_files(smoke_run["uri"], run.info.run_id, "evaluation") if path.endswith(".png")]
    assert PurePosixPath(plot).name == "4cd1b7b2-0.png"
    for folder in PurePosixPath(plot).parts[1:-1]:
        page.get_by_label(folder, exact=True).click()
    page.get_by_label(PurePosixPath(plot).name, exact=True).click()
    image = page.locator(f'img[alt="{plot}"]').first  # the preview names the image by its path
    image.wait_for()
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    shown = image.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    # the PNG itself was served and decoded (not a broken-image icon)
    assert tuple(shown) == png_size(Path(urlparse(run.info.artifact_uri).path) / plot)
    # clicking a tree node scrolled the page sideways (the long run name overflows): back to the left edge
    page.evaluate("document.querySelectorAll('*').forEach(element => { element.scrollLeft = 0; })")
    page.screenshot(path=str(smoke_run["folder"] / "artifacts.png"))
