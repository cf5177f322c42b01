"""The web pages in a real browser: Debian's headless Chromium, driven by selenium, against `hubpub hub serve`
over a store where the demo family was published. Screenshots land in test-artifacts/pages/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.hub.demo_family import BASE_MODEL, DEMO_TOKEN, HOSTILE, PRIVATE, PWNED, RICH, W4A16, W8A8

CHROMIUM = Path(os.environ.get("HUBPUB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("HUBPUB_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="no Chromium: `make test` installs Debian's chromium and chromium-driver",
)


@pytest.fixture(scope="module")
def served(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The pages' URL of `hubpub hub serve` over a copy of the demo store, with demo's token."""
    store = tmp_path_factory.mktemp("served") / "store"
    shutil.copytree(demo_store, store)
    command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(store), "--port", "0"]
    server = subprocess.Popen(
        [*command, "--token", DEMO_TOKEN, "--user", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]
        pages = [line for line in lines if line.strip().startswith("web pages: ")]
        assert pages, lines
        yield pages[0].split("web pages: ", 1)[1].split()[0]
    finally:
        server.terminate()
        server.communicate(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def texts(browser: WebDriver, selector: str) -> list[str]:
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def assert_nothing_ran(browser: WebDriver) -> None:
    assert browser.find_element(By.TAG_NAME, "body").get_attribute(PWNED) is None
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text


def test_the_index_shows_the_family_and_no_private_repo(browser: WebDriver, served: str) -> None:
    browser.get(served)
    assert "smollm2-135m-demo" in " ".join(texts(browser, "section.family h2"))
    links = texts(browser, "a.repo-link")
    assert W4A16 in links and W8A8 in links and HOSTILE in links and PRIVATE not in links
    screenshot(browser, "index")


def test_a_model_page_renders_the_card_tables_and_the_evaluation_panel(browser: WebDriver, served: str) -> None:
    browser.get(served)
    browser.find_element(By.LINK_TEXT, W4A16).click()
    _arrive(browser, f"{served.rstrip('/')}/{W4A16}")
    card = browser.find_element(By.CSS_SELECTOR, "article.card")
    tables = card.find_elements(By.TAG_NAME, "table")
    assert len(tables) > 5
    assert [cell.text for cell in tables[0].find_elements(By.TAG_NAME, "th")] == ["Property", "Value"]
    assert tables[0].value_of_css_property("border-collapse") == "collapse", "the stylesheet applies under the CSP"
    assert card.find_element(By.CSS_SELECTOR, "pre code.language-python").text.startswith("from accelerate import")
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#evaluation table tbody tr")
    ]
    assert ["demo_capitals", "acc", "0.95"] in rows and ["demo_wikitext", "word_perplexity", "62.66"] in rows
    assert "model.safetensors" in texts(browser, "#files td")
    assert "v0.1.0" in texts(browser, "#refs .chip.tag")
    base = browser.find_element(By.CSS_SELECTOR, "#model-tree a")
    assert base.text == BASE_MODEL and base.get_attribute("href") == f"https://huggingface.co/{BASE_MODEL}"
    screenshot(browser, "model-page")
    browser.set_window_size(1280, 4000)
    screenshot(browser, "model-page-long")
    browser.set_window_size(1280, 1000)


def test_a_sibling_link_in_the_card_opens_the_siblings_page(browser: WebDriver, served: str) -> None:
    browser.get(f"{served.rstrip('/')}/{W4A16}")
    sibling = browser.find_element(By.CSS_SELECTOR, "article.card").find_element(By.LINK_TEXT, W8A8)
    sibling.click()
    _arrive(browser, f"{served.rstrip('/')}/{W8A8}")
    assert browser.find_element(By.CSS_SELECTOR, ".repo-header h1").text == W8A8.replace("/", " / ")
    assert "W8A8 vs Other Schemes" in texts(browser, "article.card h2")


def test_a_card_with_scripts_and_javascript_links_runs_nothing(browser: WebDriver, served: str) -> None:
    browser.get(f"{served.rstrip('/')}/{HOSTILE}")
    assert browser.find_elements(By.TAG_NAME, "script") == []
    card = browser.find_element(By.CSS_SELECTOR, "article.card")
    assert "script tag" not in card.text and "'cell'" not in card.text, "scripts go, text and all"
    assert_links_are_safe(browser, served)
    assert_nothing_ran(browser)
    for text in ("a javascript link", "an entity-encoded javascript link", "a raw HTML link", "cell link"):
        assert text in card.text
        assert_no_link(card, text)
    screenshot(browser, "hostile-card")


def test_the_html_model_cards_use_renders_and_hostile_html_inside_it_runs_nothing(
    browser: WebDriver, served: str
) -> None:
    browser.get(f"{served.rstrip('/')}/{RICH}")
    card = browser.find_element(By.CSS_SELECTOR, "article.card")
    assert "hubpub:snippet" not in browser.page_source
    assert browser.find_elements(By.TAG_NAME, "script") == []
    for tag in ("iframe", "svg", "form", "input", "object", "style", "base", "meta[http-equiv]"):
        assert card.find_elements(By.CSS_SELECTOR, tag) == [], tag
    closed, opened = card.find_elements(By.TAG_NAME, "details")
    assert closed.get_attribute("open") is None and "Hidden" not in closed.text
    closed.find_element(By.TAG_NAME, "summary").click()
    WebDriverWait(browser, 10).until(lambda _: closed.get_attribute("open") is not None)
    assert "Hidden Markdown inside: press Ctrl+C" in closed.text
    assert [key.text for key in closed.find_elements(By.TAG_NAME, "kbd")] == ["Ctrl", "C"]
    assert closed.find_element(By.TAG_NAME, "sup").text == "2" and closed.find_element(By.TAG_NAME, "sub").text == "2"
    assert opened.get_attribute("open") is not None
    opened.find_element(By.TAG_NAME, "summary").click()  # an onclick and an ontoggle were there
    cover = card.find_element(By.XPATH, ".//div[contains(., 'cover the page')]")
    assert cover.value_of_css_property("position") == "static", "its style attribute is gone"
    webdriver.ActionChains(browser).move_to_element(cover).perform()
    assert_links_are_safe(browser, served)
    for text in ("a span link", "a table link"):
        assert_no_link(card, text)
    assert card.find_element(By.LINK_TEXT, "a sibling").get_attribute("href") == f"{served.rstrip('/')}/{HOSTILE}"
    assert_nothing_ran(browser)
    screenshot(browser, "rich-card")


def assert_links_are_safe(browser: WebDriver, served: str) -> None:
    hrefs = [str(link.get_attribute("href")) for link in browser.find_elements(By.CSS_SELECTOR, "a[href]")]
    sources = [str(image.get_attribute("src")) for image in browser.find_elements(By.CSS_SELECTOR, "img[src]")]
    for url in hrefs + sources:
        assert url.startswith(served.rstrip("/")) or url.startswith("https://"), url


def assert_no_link(card: WebElement, text: str) -> None:
    """Nothing with this text leads anywhere: a Markdown link to an unsafe URL stays text, a raw one loses its href."""
    assert [link for link in card.find_elements(By.PARTIAL_LINK_TEXT, text) if link.get_attribute("href")] == [], text


def test_a_private_repo_shows_only_after_logging_in_with_its_token(browser: WebDriver, served: str) -> None:
    private = f"{served.rstrip('/')}/{PRIVATE}"
    browser.get(private)
    assert "does not exist" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.LINK_TEXT, "log in").click()
    browser.find_element(By.ID, "token").send_keys(DEMO_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _arrive(browser, private)
    assert "A secret card." in browser.find_element(By.CSS_SELECTOR, "article.card").text
    cookie = browser.get_cookie("hubpub_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert DEMO_TOKEN not in str(browser.get_cookies()), "the browser holds a session id, not the token"
    assert "hubpub_session" not in str(browser.execute_script("return document.cookie"))
    screenshot(browser, "private-after-login")
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    _arrive(browser, served)  # else the logout's redirect to the index may land after the next get
    browser.get(private)
    assert "does not exist" in browser.find_element(By.TAG_NAME, "h1").text
    # The old cookie, put back, logs nobody in: logging out ended its session on the server.
    browser.add_cookie({"name": "hubpub_session", "value": cookie["value"], "path": "/", "httpOnly": True})
    browser.get(private)
    assert "does not exist" in browser.find_element(By.TAG_NAME, "h1").text
    assert "not valid on this Hub" in browser.find_element(By.CSS_SELECTOR, ".banner.warning").text


def _arrive(browser: WebDriver, url: str) -> None:
    """A click returns before the navigation it starts has ended: wait for `url`, failing after 10 s."""
    WebDriverWait(browser, 10).until(expected_conditions.url_to_be(url))
    assert browser.current_url == url


def test_an_uploaded_page_or_svg_opened_from_the_hub_runs_nothing(browser: WebDriver, served: str) -> None:
    """Chromium saves the file instead of rendering it. (Chromium sniffs no octet-stream, so this would also pass
    without nosniff and the sandbox; test_raw_files.py checks those headers. It fails if a file goes out as HTML.)"""
    base = served.rstrip("/")
    api = HfApi(endpoint=base, token=DEMO_TOKEN)
    api.create_repo("demo/uploads")
    hostile = {
        "page.html": b"<html><body><script>document.title='pwned'; alert(1)</script>page</body></html>",
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>document.title="pwned";alert(1)</script></svg>',
    }
    for path, content in hostile.items():
        api.upload_file(path_or_fileobj=content, path_in_repo=path, repo_id="demo/uploads")
    browser.get(f"{base}/{W4A16}")
    for path in hostile:
        browser.get(f"{base}/demo/uploads/resolve/main/{path}")
        assert browser.title != "pwned", path
        assert_nothing_ran(browser)
        assert "page" not in browser.find_element(By.TAG_NAME, "body").text.split(), "the page was not rendered"
