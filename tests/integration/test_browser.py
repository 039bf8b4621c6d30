"""A real browser: Debian's chromium driven by selenium through Debian's chromedriver.

`tenancy-diag lab` on the sandbox, a notebook opened and Run All from JupyterLab's menu, every
cell run and none in error; then a bundle's index.html and an evidence page opened with the
network blocked, nothing failing to load. Screenshots go to outputs/browser/ for a person.

Nothing here downloads a browser: the binaries are Debian's (`bash .ci/bootstrap.sh` installs
them), given to selenium by path so Selenium Manager never runs. Under CI=true a missing
browser fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sandbox-webhook_storm")]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "outputs" / "browser"
#: Headless, and quiet: no first-run pages, no component updates, sync or background fetches.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: A proxy nobody listens on: whatever the blocking below misses cannot reach a network either.
DEAD_PROXY = ("--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")


def _binaries() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        browser = None
    if browser and driver:
        return browser, driver
    message = (
        "chromium, chromium-driver (Debian) and selenium are needed; "
        "`bash .ci/bootstrap.sh test` installs them"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _chrome(profile: Path, *extra: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = _binaries()
    options = Options()
    options.binary_location = browser
    for flag in (*HEADLESS_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000", *extra):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    profile.mkdir(parents=True)  # new and empty: no state from any earlier run
    service = Service(executable_path=driver, log_output=str(profile.parent / "chromedriver.log"))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
def chrome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # were Selenium Manager ever asked, it stays offline
    started: list[Any] = []

    def start(*extra: str) -> Any:
        driver = _chrome(tmp_path / f"profile-{len(started)}", *extra)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


def _wait(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    seen: Callable[[], object] = lambda: "",
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = condition()
        except Exception:  # the page is still being built: selenium's not-yet errors
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; saw {seen()}")


def _screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert driver.save_screenshot(str(path)), path
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # loopback only
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture
def lab_on_sandbox(sandbox, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """`tenancy-diag lab` on the webhook_storm sandbox: (its URL, its lab folder, its token)."""
    endpoints = sandbox("webhook_storm")
    port, token = _free_port(), secrets.token_hex(16)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # no user settings, no news
    }
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenancy_diag.cli", "lab", "--state-dir", endpoints.state_dir,
         "--out", str(out), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        _wait(lambda: _answers(f"http://127.0.0.1:{port}/api/status?token={token}"), 120, "lab")
        (folder,) = (out / "practice").iterdir()
        yield f"http://127.0.0.1:{port}", folder, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_run_all_in_jupyterlab_runs_every_cell_without_error(chrome, lab_on_sandbox):
    from selenium.webdriver.common.by import By

    base, folder, token = lab_on_sandbox
    driver = chrome()
    started = time.monotonic()
    driver.get(f"{base}/lab/tree/notebooks/webhook_delivery.ipynb?token={token}")
    _wait(
        lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"),
        120,
        "the notebook's cells",
    )
    copy = json.loads((folder / "notebooks" / "webhook_delivery.ipynb").read_text())
    code_cells = [c for c in copy["cells"] if c["cell_type"] == "code"]
    _wait(
        lambda: driver.find_elements(
            By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']"
        ),
        120,
        "the notebook's kernel to be idle",
    )

    def prompts() -> list[str]:
        # textContent, not .text: JupyterLab keeps cells out of view unrendered (invisible).
        return [
            str(p.get_attribute("textContent")).strip()
            for p in driver.find_elements(
                By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt"
            )
        ]

    # The page may show "Idle" before its session has a kernel; the server knows. A Run All
    # given while the session has no kernel clears the cells and runs nothing: give it again
    # until the first cell is queued or run.
    _wait(lambda: _kernel_idle(base, token), 240, "the server to report the kernel idle")
    deadline = time.monotonic() + 240
    while True:
        _dismiss_dialogs(driver)
        driver.find_element(
            By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel')][.='Run']"
        ).click()
        _wait(
            lambda: driver.find_element(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']"),
            10,
            "the Run All menu item",
        ).click()
        try:
            _wait(lambda: prompts() and prompts()[0] != "[ ]:", 15, "Run All to start")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    _wait(
        lambda: all(re.fullmatch(r"\[\d+\]:", p) for p in prompts()),
        300,
        "every cell to run (each prompt numbered, none [*])",
        lambda: (
            prompts(),
            _screenshot(driver, "lab-run-all-timeout.png"),
            driver.get_log("browser")[-10:],
            (folder.parent.parent.parent / "lab.log").read_text(errors="replace")[-3000:],
        ),
    )
    seconds = time.monotonic() - started
    assert len(prompts()) == len(code_cells), "a code cell did not run"
    errors = driver.find_elements(
        By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output[data-mime-type="
        "'application/vnd.jupyter.stderr'] .ansi-red-fg, .jp-NotebookPanel .jp-mod-error"
    )  # fmt: skip
    assert not errors, [e.text[:300] for e in errors]
    # What the kernel wrote proves where the lab writes: the lab folder, never notebooks/.
    findings = json.loads((folder / "findings" / "webhook_delivery.json").read_text())
    assert findings["incident"] == "practice" and findings["status"] == "failing"
    assert not (REPO / "notebooks" / "findings.json").exists()
    last = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")[-1]
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", last)
    time.sleep(0.5)
    path = _screenshot(driver, "lab-run-all.png")
    print(f"\nscreenshot {path}; Run All took {seconds:.1f} s")


def _kernel_idle(base: str, token: str) -> bool:
    """The server's word: the notebook's session has a kernel, and it is idle."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
        sessions = json.loads(answer.read())
    return any(
        s.get("path", "").endswith("webhook_delivery.ipynb")
        and (s.get("kernel") or {}).get("execution_state") == "idle"
        for s in sessions
    )


def _dismiss_dialogs(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"):
        button.click()


def _requests(driver: Any) -> list[str]:
    """Every URL the page asked for, from the DevTools log (loads that failed too)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _assert_loaded_offline(driver: Any, page: Path) -> None:
    # What came before (the browser's own new-tab page) is not this page's doing.
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(page.as_uri())
    _wait(lambda: driver.execute_script("return document.readyState") == "complete", 30, "load")
    requested = _requests(driver)
    assert requested and all(u.startswith(("file:", "data:")) for u in requested), requested
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(r.startswith(("file:", "data:")) for r in resources), resources
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || !i.naturalWidth)"
        ".map(i => i.src.slice(0, 80))"
    )
    assert broken == [], broken
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def test_index_and_an_evidence_page_load_everything_with_the_network_blocked(chrome, sample_bundle):
    from selenium.webdriver.common.by import By

    driver = chrome(*DEAD_PROXY)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]}
    )
    started = time.monotonic()
    _assert_loaded_offline(driver, sample_bundle / "index.html")
    index_shot = _screenshot(driver, "index-offline.png")

    page = sample_bundle / "html" / "policy_evaluation.html"
    _assert_loaded_offline(driver, page)
    # Findings first: the verdict is on screen without scrolling; the code is not.
    status = driver.find_element(By.XPATH, "//main//th[.='Status']")
    assert driver.execute_script("return arguments[0].getBoundingClientRect().top", status) < 1000
    inputs = driver.find_elements(By.CSS_SELECTOR, "main .jp-CodeCell .jp-Cell-inputWrapper")
    assert inputs and not any(i.is_displayed() for i in inputs)
    page_shot = _screenshot(driver, "evidence-page-offline.png")
    driver.find_element(By.CSS_SELECTOR, "label.td-code-switch").click()
    assert _wait(lambda: any(i.is_displayed() for i in inputs), 5, "the code to show")
    # The header's links lead to pages that open.
    driver.find_element(By.CSS_SELECTOR, "nav.td-nav a.td-index").click()
    _wait(lambda: driver.title.startswith("Incident sample"), 10, "the index from the header")
    print(f"\nscreenshots {index_shot}, {page_shot}; {time.monotonic() - started:.1f} s")
