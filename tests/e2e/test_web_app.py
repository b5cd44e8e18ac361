"""The web app in headless Chromium (Debian's chromium and chromium-driver, through selenium) at a phone's width,
against the embedded server on the tiny model: key, photo, two concepts, live progress from server-sent events
(with the stream dropped mid-job), mask overlays, heatmaps, generate, download the zip; the API's sentence beside
the field it concerns; /docs and /redoc with no network but the server's own origin."""

import os
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from attencraft_cli.sample_photo import two_object_photo
from attencraft_cli.service_commands import embedded_service
from attencraft_core.training import StepRecord
from service.settings import Settings
from worker.jobs import JobReporter

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = (390, 844)
TRAIN_STEPS = 6
WAIT_S = 300
SCREENSHOTS = Path(os.environ.get("ATTENCRAFT_TEST_ARTIFACTS", "test-artifacts"))


@dataclass
class Server:
    url: str
    key: str
    stream_requests: list[dict[str, str | None]] = field(default_factory=list)  # path, Last-Event-ID


def recording_streams(app: Any, requests: list[dict[str, str | None]]) -> Callable[..., Any]:
    """The app, noting every event-stream request and the Last-Event-ID it resumed from."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/events"):
            headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
            requests.append({"path": scope["path"], "last_event_id": headers.get("last-event-id")})
        await app(scope, receive, send)

    return asgi


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("web"), base_model="tiny", device="cpu", checkpoint_every=0)
    requests: list[dict[str, str | None]] = []
    with socket.socket() as sock, embedded_service(settings) as service:
        sock.bind(("127.0.0.1", 0))
        http = uvicorn.Server(uvicorn.Config(recording_streams(service.app, requests), log_level="warning"))
        thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not http.started:
            time.sleep(0.05)
        try:
            yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", service.new_key(), requests)
        finally:
            http.should_exit = True
            thread.join(10)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={PHONE[0]},{PHONE[1]}",
    ):
        options.add_argument(argument)
    # No network but this machine: a page that needs a CDN fails to render.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "ball-and-box.png"
    two_object_photo(128).resize((192, 128)).save(path)
    return path


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition, message=f"waiting for {what}")


def enter_key(driver: WebDriver, server: Server) -> None:
    driver.get(f"{server.url}/#/new")
    driver.execute_script("sessionStorage.clear()")  # a new browser session: the key is asked for once
    driver.refresh()
    wait(driver, lambda d: d.find_element(By.ID, "api-key").is_displayed(), "the key form")
    driver.find_element(By.ID, "api-key").send_keys(server.key, Keys.ENTER)
    wait(driver, lambda d: d.find_elements(By.ID, "concept-input"), "the new job form")


def add_concepts(driver: WebDriver, *names: str) -> None:
    for name in names:
        driver.find_element(By.ID, "concept-input").send_keys(name, Keys.ENTER)


def loaded_images(driver: WebDriver, selector: str) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length",
        selector,
    )


def test_the_api_sentence_shows_beside_the_field_and_the_form_keeps_its_input(
    server: Server, browser: WebDriver, photo: Path
) -> None:
    enter_key(browser, server)
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    add_concepts(browser, "cat", "teddy bear")
    browser.find_element(By.ID, "submit-job").click()

    error = wait(browser, lambda d: d.find_element(By.ID, "error-concepts").text, "the API's sentence")
    assert "Concept name 'teddy bear' is not a plain word" in error
    chips = browser.find_elements(By.CSS_SELECTOR, ".chip")
    assert [chip.find_element(By.TAG_NAME, "span").text for chip in chips] == ["cat", "teddy bear"]
    assert chips[1].get_attribute("aria-invalid") == "true"
    assert browser.execute_script("return document.getElementById('photo').files.length") == 1
    unlabeled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea, button')].filter(c =>"
        " !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim()).map(c => c.id)"
    )
    assert unlabeled == []


def test_a_whole_job_from_photo_to_zip_with_a_dropped_stream(
    server: Server, browser: WebDriver, photo: Path, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = threading.Event()
    take_step = JobReporter.on_step

    def hold_after_the_first_step(reporter: JobReporter, record: StepRecord, total: int) -> None:
        take_step(reporter, record, total)
        if record.step == 1:  # the page shows the first progress; the test drops its stream, then training goes on
            dropped.wait(WAIT_S)

    monkeypatch.setattr(JobReporter, "on_step", hold_after_the_first_step)
    enter_key(browser, server)
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    add_concepts(browser, "ball", "box")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    steps = browser.find_element(By.ID, "option-steps")
    steps.clear()
    steps.send_keys(str(TRAIN_STEPS))
    browser.find_element(By.ID, "submit-job").click()

    wait(browser, lambda d: "#/jobs/" in d.current_url, "the job page")
    job_id = browser.current_url.rsplit("/", 1)[-1]
    progress = lambda d: int(d.find_element(By.ID, "progress").get_attribute("aria-valuenow") or 0)  # noqa: E731
    wait(browser, lambda d: progress(d) > 0, "the first progress event")
    assert progress(browser) < 100
    browser.execute_script("window.attencraftDropStreams()")
    dropped.set()

    wait(browser, lambda d: d.find_element(By.ID, "job-status").text == "succeeded", "the end event")
    assert progress(browser) == 100
    resumed = [request for request in server.stream_requests if request["path"] == f"/jobs/{job_id}/events"]
    assert len(resumed) >= 2 and resumed[0]["last_event_id"] is None and resumed[1]["last_event_id"]
    wait(browser, lambda d: loaded_images(d, "#photo-box img.mask") == 2, "both mask overlays")
    wait(browser, lambda d: loaded_images(d, "#heatmaps img") == 4, "the heatmaps before and after the walk")
    assert loaded_images(browser, "#photo-box img.photo") == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#loss-chart polyline")) == 2
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(PHONE[0], browser.execute_script("return document.documentElement.scrollHeight") + 120)
    browser.save_screenshot(str(SCREENSHOTS / "job-page.png"))  # the whole page, at the phone's width
    browser.set_window_size(*PHONE)
    print(f"screenshot of the job page: {(SCREENSHOTS / 'job-page.png').resolve()}")

    browser.find_element(By.ID, "steps").clear()
    browser.find_element(By.ID, "steps").send_keys("2")
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "submit-generation").click()
    wait(browser, lambda d: loaded_images(d, "#gallery img") == 1, "the generated image")
    assert "seed 7" in browser.find_element(By.CSS_SELECTOR, "#gallery figcaption").text

    browser.find_element(By.ID, "download-zip").click()
    archive = downloads / f"attencraft-{job_id}.zip"
    wait(browser, lambda _: archive.exists() and zipfile.is_zipfile(archive), "the zip download")
    with zipfile.ZipFile(archive) as opened:
        assert {"weights.safetensors", "metadata.json", "heatmap_0_before.png"} <= set(opened.namelist())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_render_without_network(server: Server, browser: WebDriver, page: str) -> None:
    browser.get(f"{server.url}{page}")
    rendered = ".swagger-ui .info .title" if page == "/docs" else "h1"
    wait(browser, lambda d: "AttenCraft" in d.find_element(By.CSS_SELECTOR, rendered).text, "the rendered docs", 60)
    assert "create_job" in browser.page_source or "Submit a training job" in browser.page_source
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.responseStatus > 0).map(e => e.name)"
    )
    assert loaded and all(url.startswith(server.url) for url in loaded)  # what rendered came from the server
    external = browser.execute_script(
        "return [...document.querySelectorAll('[src], link[href]')].map(e => e.src || e.href)"
        ".filter(u => /^https?:/.test(u) && !u.startsWith(location.origin))"
    )
    assert external == []
