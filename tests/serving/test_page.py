"""The page of ``hybrid serve`` driven in headless Chromium (Debian's ``chromium`` package through
Playwright): search, open a product, build a new user's profile, see recommendations, look up a
known user. Skipped, with the reason, only where Playwright or Chromium is not installed."""

import os
import shutil

import pytest
from conftest import Server

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def chromium_path() -> str | None:
    for name in (os.environ.get("HYBRID_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def page(served_model, tmp_path_factory):
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium executable (apt-get install chromium; .ci/run does)")
    model = tmp_path_factory.mktemp("page") / "recommender"
    shutil.copytree(served_model, model)
    server = Server(model)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(server.url + "/")
        page.server = server
        yield page
        browser.close()
    server.stop()


def texts(locator) -> list[str]:
    return [t.strip() for t in locator.all_inner_texts()]


def test_search_then_open_a_product(page):
    playwright_api.expect(page.locator("#model")).to_contain_text("1,682 products")
    page.fill("#search-text", "star wars space")
    page.press("#search-text", "Enter")
    results = page.locator("#search-results li")
    playwright_api.expect(results.first).to_contain_text("Star")
    assert results.count() == 20
    page.locator("#search-results li a.open", has_text="Star Wars").first.click()
    playwright_api.expect(page.locator("#product-title")).to_have_text("Star Wars")
    playwright_api.expect(page.locator("#product-text")).to_contain_text("rating(s)")
    playwright_api.expect(page.locator("#similar-content li")).to_have_count(10)
    playwright_api.expect(page.locator("#similar-collaborative li")).to_have_count(10)
    similar = [li.get_attribute("data-item-id") for li in page.locator("#similar-collaborative li").all()]
    assert "50" not in similar  # the product itself is not its own neighbour


def test_a_new_user_profile_gets_recommendations(page):
    page.fill("#search-text", "toy story animation")
    page.press("#search-text", "Enter")
    playwright_api.expect(page.locator("#search-results li").first).to_be_visible()
    page.locator("#search-results li", has_text="Toy Story").locator("button.like").first.click()
    page.fill("#search-text", "star wars")
    page.press("#search-text", "Enter")
    page.locator("#search-results li", has_text="Star Wars").locator("button.like").first.click()
    profile = page.locator("#profile li[data-item-id]")
    playwright_api.expect(profile).to_have_count(2)
    liked = {li.get_attribute("data-item-id") for li in profile.all()}
    page.fill("#profile-text", "space adventure")
    page.click("#recommend-btn")
    results = page.locator("#new-user-results li")
    playwright_api.expect(results).to_have_count(10)
    answered = {li.get_attribute("data-item-id") for li in results.all()}
    assert not liked & answered  # what they liked is not recommended back
    # removing a liked product changes the profile
    profile.first.locator("button").click()
    playwright_api.expect(page.locator("#profile li[data-item-id]")).to_have_count(1)


def test_a_known_user_and_an_unknown_one(page):
    page.fill("#user-id", "196")
    page.click("#user-btn")
    playwright_api.expect(page.locator("#user-recs li")).to_have_count(10)
    playwright_api.expect(page.locator("#user-recs li .why")).to_have_count(10)  # a line each says why
    assert all(line.startswith(("because you liked", "matches", "close to what you liked"))
               for line in page.locator("#user-recs li .why").all_inner_texts())
    playwright_api.expect(page.locator("#user-rated li").first).to_be_visible()
    recommended = {li.get_attribute("data-item-id") for li in page.locator("#user-recs li").all()}
    rated = {li.get_attribute("data-item-id") for li in page.locator("#user-rated li").all()}
    assert rated and not recommended & rated
    page.fill("#user-id", "nobody")
    page.click("#user-btn")
    playwright_api.expect(page.locator("#error")).to_contain_text("new-user")
    page.fill("#search-text", "   ")
    page.press("#search-text", "Enter")
    playwright_api.expect(page.locator("#error")).to_contain_text("give some words")
