"""The Dash report in a real headless Chromium: load a recorded run (with a confirmation round
appended), see the tie set, move the budget, see the chosen config change, and save a
screenshot."""

from __future__ import annotations

import math
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from analyzer.report import answer_at, choose_at_budget
from dashboards import create_app
from tests.helpers import ROOT, free_port
from tests.unit.test_dashboard import CONFIRMED, MISSED, TIE_SET
from tests.unit.test_report_confirm import add_confirm_round

RECORDED = ROOT / "tests" / "data" / "run_demo"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    # CI installs Debian's chromium and chromium-driver (.ci/run); there a missing browser fails.
    if os.environ.get("CI"):
        pytest.fail("chromium/chromedriver missing: .ci/run should have installed them", pytrace=False)
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)


PIPELINE = ROOT / "tests" / "data" / "run_pipeline"


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app on a free loopback port, serving a copy of the recorded run with a confirmation
    round appended."""
    run = tmp_path / "run"
    shutil.copytree(RECORDED, run)
    add_confirm_round(run, CONFIRMED, MISSED)
    yield from _serve(run)


@pytest.fixture()
def served_pipeline(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app serving a copy of a recorded ensemble sweep."""
    run = tmp_path / "pipeline"
    shutil.copytree(PIPELINE, run)
    yield from _serve(run)


def _serve(run: Path) -> Iterator[tuple[str, Path]]:
    from werkzeug.serving import make_server

    app = create_app(run)
    port = free_port()
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/", run
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_moving_the_budget_changes_the_chosen_config(served: tuple[str, Path], browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, run = served
    board = create_app(run).board  # the same data the page shows: find a budget that changes the answer
    m, c = board.run.measurements, board.run.configs
    first = answer_at(board.run).best  # at the sweep's budget: the confirmed pick
    assert first is not None and first["config_id"] == board.run.summary["best"]["config_id"]
    target_budget, expected = None, None
    # Budgets on the slider's 0.1 ms grid, just above each measured p99 under the sweep's budget.
    grid = {math.ceil(float(v) * 10) / 10 for v in m["p99_ms"] if float(v) < board.run.budget_ms - 0.1}
    for b in sorted(grid, reverse=True):
        pick = choose_at_budget(m, c, b, board.run.percentile, board.run.confidence)
        if pick is not None and pick["config_id"] != first["config_id"]:
            target_budget, expected = b, str(pick["config_id"])
            break
    assert target_budget is not None, "the recorded run has no budget that changes the choice"

    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 30)
    wait.until(EC.text_to_be_present_in_element((By.ID, "best-config-id"), str(first["config_id"])))
    assert driver.find_element(By.ID, "tie-set").text == ", ".join(TIE_SET)  # type: ignore[attr-defined]
    # The confirmation figure draws its points (its own callback: wait for it).
    wait.until(lambda d: d.find_element(By.ID, "confirm-figure").find_elements(By.CSS_SELECTOR, ".point"))
    driver.save_screenshot(str(tmp_path / "dashboard-before.png"))  # type: ignore[attr-defined]

    box = driver.find_element(By.CSS_SELECTOR, "#budget input.dash-range-slider-input")  # type: ignore[attr-defined]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(target_budget), Keys.ENTER)
    wait.until(EC.text_to_be_present_in_element((By.ID, "best-config-id"), expected))
    assert driver.find_element(By.ID, "budget-shown").text == f"{target_budget:g}"  # type: ignore[attr-defined]
    # Away from the sweep's budget the tie set is named as the sweep's, not shown as this one's.
    assert "sweep's budget" in driver.find_element(By.ID, "tie-set-note").text  # type: ignore[attr-defined]
    assert not driver.find_elements(By.ID, "tie-set")  # type: ignore[attr-defined]
    shot = tmp_path / "dashboard-after.png"
    driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000

    # Clicking the detail's download button is wired: the detail panel shows the chosen config.
    wait.until(EC.text_to_be_present_in_element((By.ID, "detail-config-id"), expected))
    assert "max_batch_size" in driver.find_element(By.ID, "detail-pbtxt").text  # type: ignore[attr-defined]


def test_a_pipeline_shows_its_steps_bottleneck_and_every_models_config(served_pipeline: tuple[str, Path], browser: object,
                                                                      tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, run = served_pipeline
    summary = create_app(run).board.run.summary
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 30)
    wait.until(EC.text_to_be_present_in_element((By.ID, "best-config-id"), summary["best"]["config_id"]))
    wait.until(EC.presence_of_element_located((By.ID, "bottleneck-step")))
    assert driver.find_element(By.ID, "bottleneck-step").text == summary["best"]["bottleneck_step"]  # type: ignore[attr-defined]
    for name in summary["best"]["models"]:
        link = driver.find_element(By.ID, f"download-{name}")  # type: ignore[attr-defined]
        assert link.get_attribute("download") == f"{name}.config.pbtxt"
        assert f"# {name}/config.pbtxt" in driver.find_element(By.ID, "detail-pbtxt").text  # type: ignore[attr-defined]
    driver.find_element(By.ID, "detail-steps").location_once_scrolled_into_view  # type: ignore[attr-defined]
    shot = tmp_path / "dashboard-pipeline.png"
    driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    if os.environ.get("TRITUNE_SHOTS"):  # keep the screenshot to look at
        shutil.copy(shot, Path(os.environ["TRITUNE_SHOTS"]) / shot.name)
    assert shot.stat().st_size > 10_000
