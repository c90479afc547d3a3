"""The page of ``hybrid serve`` driven in headless Chromium (Debian's ``chromium`` package through
Playwright): search, open a product, build a new user's profile, see recommendations, look up a
known user. Skipped, with the reason, only where Playwright or Chromium is not installed."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import Server, chromium_path

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


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
    playwright_api.expect(page.locator("#product-counts")).to_contain_text("rating(s)")
    playwright_api.expect(page.locator("#similar-content li")).to_have_count(10)
    playwright_api.expect(page.locator("#similar-collaborative li")).to_have_count(10)
    similar = [li.get_attribute("data-item-id") for li in page.locator("#similar-collaborative li").all()]
    assert "50" not in similar  # the product itself is not its own neighbour
    assert page.locator(".score").count() == 0  # no unlabelled numbers


def test_examples_come_from_the_loaded_catalogue(page):
    examples = page.server.client.get("/api/examples").json()
    assert len(examples["users"]) == 5 and examples["words"] == "star wars"  # the most liked film
    playwright_api.expect(page.locator("#user-examples button")).to_have_count(4)
    assert texts(page.locator("#user-examples button")) == examples["users"][:4]
    assert page.get_attribute("#search-text", "placeholder") == "words, e.g. star wars"
    assert examples["users"][0] in page.get_attribute("#user-id", "placeholder")
    page.locator("#user-examples button").first.click()
    playwright_api.expect(page.locator("#user-recs li")).to_have_count(10)
    assert page.input_value("#user-id") == examples["users"][0]


def test_a_new_user_profile_gets_recommendations_that_say_why(page):
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
    playwright_api.expect(page.locator("#new-user-results li .why")).to_have_count(10)
    assert any(line.startswith("because you liked") for line in texts(page.locator("#new-user-results .why")))
    answered = {li.get_attribute("data-item-id") for li in results.all()}
    assert not liked & answered  # what they liked is not recommended back
    # more variety: another list, from the same service answer the API gives
    page.fill("#diversity", "0.8")
    page.dispatch_event("#diversity", "input")
    playwright_api.expect(page.locator("#diversity-value")).to_have_text("0.8")
    page.click("#recommend-btn")
    playwright_api.expect(page.locator("#new-user-results li .why")).to_have_count(10)
    varied = [li.get_attribute("data-item-id") for li in page.locator("#new-user-results li").all()]
    api = page.server.client.post("/api/recommendations/new-user", json={
        "liked_items": sorted(liked, key=lambda i: i != "1"), "text": "space adventure", "n": 10,
        "diversity": 0.8}).json()
    assert varied == [i["item_id"] for i in api["items"]] and set(varied) != answered
    page.fill("#diversity", "0")
    page.dispatch_event("#diversity", "input")
    # removing a liked product changes the profile, and the list shown is asked again for it
    removed = profile.first.get_attribute("data-item-id")
    profile.first.locator("button").click()
    playwright_api.expect(page.locator("#profile li[data-item-id]")).to_have_count(1)
    kept = (liked - {removed}).pop()
    api = page.server.client.post("/api/recommendations/new-user", json={
        "liked_items": [kept], "text": "space adventure", "n": 10}).json()
    wanted = [i["item_id"] for i in api["items"]]
    playwright_api.expect(page.locator("#new-user-results li .why")).to_have_count(10)
    page.wait_for_function("(ids) => [...document.querySelectorAll('#new-user-results li')]"
                           ".map((li) => li.dataset.itemId).join() === ids.join()", arg=wanted)


def test_a_known_user_then_an_unknown_one_clears_the_stale_list(page):
    page.fill("#user-id", "196")
    page.click("#user-btn")
    playwright_api.expect(page.locator("#user-recs li")).to_have_count(10)
    playwright_api.expect(page.locator("#user-recs li .why")).to_have_count(10)  # a line each says why
    assert all(line.startswith(("because you liked", "matches", "close to "))
               for line in page.locator("#user-recs li .why").all_inner_texts())
    playwright_api.expect(page.locator("#user-rated li").first).to_be_visible()
    recommended = {li.get_attribute("data-item-id") for li in page.locator("#user-recs li").all()}
    rated = page.locator("#user-rated li")
    assert rated.count() and not recommended & {li.get_attribute("data-item-id") for li in rated.all()}
    # likes first, each with the date it was rated
    flags = [li.locator(".badge.liked").count() == 1 for li in rated.all()]
    assert flags == sorted(flags, reverse=True) and any(flags)
    assert all(texts(rated.nth(k).locator(".when"))[0] for k in range(rated.count()))
    page.fill("#user-id", "nobody")
    page.click("#user-btn")
    error = page.locator("#known-user .error")
    playwright_api.expect(error).to_contain_text("no customer “nobody”")
    playwright_api.expect(page.locator("#user-recs li")).to_have_count(0)  # the previous user's list is gone
    playwright_api.expect(page.locator("#user-rated li")).to_have_count(0)
    assert "/api" not in error.inner_text()  # words for a person, not for a program
    assert page.locator("#search .error").inner_text() == ""  # said where it happened only
    page.fill("#search-text", "   ")
    page.press("#search-text", "Enter")
    playwright_api.expect(page.locator("#search .error")).to_contain_text("Type a few words")
    page.fill("#search-text", "xyzzy qwrtp")
    page.press("#search-text", "Enter")
    playwright_api.expect(page.locator("#search .error")).to_contain_text("None of those words")
    page.fill("#user-id", "196")
    page.click("#user-btn")
    playwright_api.expect(page.locator("#user-recs li")).to_have_count(10)
    playwright_api.expect(error).to_have_text("")


def test_a_slow_answer_shows_that_it_is_loading(page):
    page.evaluate("""() => { window.realFetch = window.fetch;
        window.fetch = (...args) => new Promise((done) => setTimeout(() => done(window.realFetch(...args)), 1500)); }""")
    try:
        page.fill("#search-text", "star wars")
        page.press("#search-text", "Enter")
        playwright_api.expect(page.locator("#search-results li.loading")).to_have_text("loading…")
        playwright_api.expect(page.locator("#search-btn")).to_be_disabled()
        playwright_api.expect(page.locator("#search")).to_have_attribute("aria-busy", "true")
        playwright_api.expect(page.locator("#search-results li")).to_have_count(20)
        playwright_api.expect(page.locator("#search-btn")).to_be_enabled()
    finally:
        page.evaluate("() => { window.fetch = window.realFetch; }")


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_the_page_fits_the_screen_and_is_pictured(page, width, tmp_path):
    page.set_viewport_size({"width": width, "height": 900})
    page.fill("#user-id", "196")
    page.click("#user-btn")
    playwright_api.expect(page.locator("#user-recs li .why")).to_have_count(10)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing cut off at the side
    boxes = [page.locator(f"#{name}").bounding_box() for name in ("search", "product", "new-user", "known-user")]
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= width for box in boxes)
    columns = len({round(box["x"]) for box in boxes})
    assert columns == (1 if width < 760 else 2)
    folder = Path(os.environ.get("HYBRID_SCREENSHOTS", tmp_path))
    page.screenshot(path=str(folder / f"page-{width}.png"), full_page=True)
    assert (folder / f"page-{width}.png").stat().st_size > 10_000
    page.set_viewport_size({"width": 1280, "height": 900})
