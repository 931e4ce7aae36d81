"""The Dash report in a real headless Chromium: load a recorded run (with a confirmation round
appended), see the tie set, move the budget, see the chosen config change, see Bootstrap's
layout apply (served by the app itself), compare two configs, and save screenshots (kept in
$TRITUNE_SHOTS when it is set)."""

from __future__ import annotations

import math
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.report import answer_at, choose_at_budget
from dashboards import create_app
from tests.builders import CONFIRMED, MISSED, TIE_SET, add_confirm_round, append_config
from tests.helpers import ROOT, free_port

RECORDED = ROOT / "tests" / "data" / "run_demo"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    # CI installs Debian's chromium and chromium-driver (.ci/run); there a missing browser fails.
    if os.environ.get("CI"):
        pytest.fail("chromium/chromedriver missing: .ci/run should have installed them", pytrace=False)
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


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


def _shot(driver: object, tmp_path: Path, name: str) -> Path:
    """Save a screenshot (and keep a copy in $TRITUNE_SHOTS when it is set, to look at)."""
    shot = tmp_path / name
    driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    if os.environ.get("TRITUNE_SHOTS"):
        shutil.copy(shot, Path(os.environ["TRITUNE_SHOTS"]) / shot.name)
    return shot


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_moving_the_budget_changes_the_chosen_config(
    served: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
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
    _shot(driver, tmp_path, "dashboard-before.png")

    box = driver.find_element(By.CSS_SELECTOR, "#budget input.dash-range-slider-input")  # type: ignore[attr-defined]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(target_budget), Keys.ENTER)
    wait.until(EC.text_to_be_present_in_element((By.ID, "best-config-id"), expected))
    assert driver.find_element(By.ID, "budget-shown").text == f"{target_budget:g}"  # type: ignore[attr-defined]
    # Away from the sweep's budget the tie set is named as the sweep's, not shown as this one's.
    assert "sweep's budget" in driver.find_element(By.ID, "tie-set-note").text  # type: ignore[attr-defined]
    assert not driver.find_elements(By.ID, "tie-set")  # type: ignore[attr-defined]
    shot = _shot(driver, tmp_path, "dashboard-after.png")
    assert shot.stat().st_size > 10_000

    # Clicking the detail's download button is wired: the detail panel shows the chosen config.
    wait.until(EC.text_to_be_present_in_element((By.ID, "detail-config-id"), expected))
    assert "max_batch_size" in driver.find_element(By.ID, "detail-pbtxt").text  # type: ignore[attr-defined]


def test_a_pipeline_shows_its_steps_bottleneck_and_every_models_config(
    served_pipeline: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
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
    driver.execute_script(
        "arguments[0].scrollIntoView()",  # type: ignore[attr-defined]
        driver.find_element(By.ID, "detail-steps"),
    )  # type: ignore[attr-defined]
    shot = _shot(driver, tmp_path, "dashboard-pipeline.png")
    assert shot.stat().st_size > 10_000


def test_the_layout_applies_and_compare_draws_once_two_are_picked(
    served: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, run = served
    board = create_app(run).board
    first, second = (str(i) for i in board.run.configs["config_id"].iloc[:2])
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 30)
    best = board.run.summary["best"]["config_id"]
    wait.until(EC.text_to_be_present_in_element((By.ID, "best-config-id"), best))
    # Bootstrap's stylesheet came from the app (the machine reaches no CDN): its variables are
    # defined, and its grid puts the side panel to the left of the answer card, level with it.
    blue = driver.execute_script(  # type: ignore[attr-defined]
        "return getComputedStyle(document.documentElement).getPropertyValue('--bs-blue')"
    )
    assert blue.strip() == "#0d6efd"
    panel = driver.find_element(By.ID, "side-panel")  # type: ignore[attr-defined]
    card = driver.find_element(By.ID, "answer-card")  # type: ignore[attr-defined]
    assert panel.location["x"] + panel.size["width"] <= card.location["x"]
    assert abs(panel.location["y"] - card.location["y"]) < 2
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pareto .point"))
    _shot(driver, tmp_path, "dashboard-layout.png")

    driver.find_element(By.XPATH, "//*[contains(@class, 'nav-link') and normalize-space()='Compare']").click()
    hint = wait.until(EC.visibility_of_element_located((By.ID, "compare-hint")))
    assert hint.text == "Pick two configs to compare."
    assert not driver.find_element(By.ID, "compare-curves").is_displayed()  # no chart, no empty axes
    _shot(driver, tmp_path, "dashboard-compare-empty.png")

    for element, config in (("compare-a", first), ("compare-b", second)):
        driver.find_element(By.ID, element).click()
        search = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".dash-dropdown-search")))
        search.send_keys(config)  # Dash's dropdown filters its options as one types
        option = (By.XPATH, f"//*[@role='option' and normalize-space()='{config}']")
        wait.until(EC.element_to_be_clickable(option)).click()
        wait.until(EC.text_to_be_present_in_element((By.ID, element), config))
    table = wait.until(EC.visibility_of_element_located((By.ID, "compare-table")))
    assert first in table.text and second in table.text
    wait.until(lambda d: d.find_element(By.ID, "compare-curves").is_displayed())
    # Both configs' curves (latency and throughput each) are drawn across the tab's width.
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-curves .scatterlayer .trace")) == 4)
    chart = driver.find_element(By.ID, "compare-curves")
    assert chart.size["width"] > 0.9 * driver.find_element(By.ID, "compare-table").size["width"]
    _shot(driver, tmp_path, "dashboard-compare.png")


def test_filters_follow_a_run_that_is_still_written(
    served: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, run = served
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 30)
    wait.until(EC.presence_of_element_located((By.ID, "best-config-id")))

    def box(value: str) -> object:
        return driver.find_element(  # type: ignore[attr-defined]
            By.XPATH, f"//*[@id='f-batch']//input[following-sibling::label[normalize-space()='{value}']]"
        )

    box("8").click()  # the user clears max batch 8
    wait.until(lambda d: not box("8").is_selected())
    label_64 = (By.XPATH, "//*[@id='f-batch']//label[normalize-space()='64']")
    assert not driver.find_elements(*label_64)  # type: ignore[attr-defined]
    # The sweep writes a config with a max batch size the page has not seen: the next refresh
    # adds it to the filter, selected, and leaves the user's choice alone.
    append_config(run, "i1_b32_d0", "i1_b64_d0", {"max_batch_size": 64})
    wait.until(EC.presence_of_element_located(label_64))
    wait.until(lambda d: box("64").is_selected())
    assert not box("8").is_selected() and box("1").is_selected() and box("32").is_selected()
    _shot(driver, tmp_path, "dashboard-filters-grown.png")
