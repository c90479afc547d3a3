"""``report.html``: the evaluation of real MovieLens-100k models as one self-contained page,
opened in headless Chromium."""

import re

import pytest
from conftest import chromium_path

from hybrid.experiments.protocols import EvaluationConfig, evaluate_all
from hybrid.experiments.report import bar_chart, write_report


@pytest.fixture(scope="module")
def outcome(ml100k):
    data, encoder, _ = ml100k
    config = EvaluationConfig(models=("mf-bias", "two-stage"), baselines=("popularity", "biases", "random"),
                              train_overrides={"epochs": 2, "batch_size": 4096}, eval_users=200,
                              recommender_settings={"retrieval.epochs": 2, "train.epochs": 1, "validation_share": 0})
    return evaluate_all(data, config, encoder, log=lambda line: None)


def test_a_chart_starts_its_axis_below_the_smallest_value_and_writes_each_value(outcome):
    results = outcome["results"]
    figure = bar_chart(results, "rmse")
    axis = figure.axes[0]
    rated = [m["rmse"] for m in results.values() if "rmse" in m]
    start, end = axis.get_xlim()
    assert 0 < start < min(rated) and end > max(rated)  # not from 0: 0.90 and 0.94 look different
    labels = [t.get_text() for t in axis.texts]
    assert sorted(labels) == sorted(f"{v:.4f}" for v in rated)
    assert f"starts at {start:.4g}" in axis.get_xlabel()


def test_the_report_is_one_page_with_the_table_charts_curves_and_blend(outcome, tmp_path):
    path = tmp_path / "report.html"
    write_report(outcome, path, "Protocol rating, split random, seed 0", 10)
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|[\w./-]+\.(png|js|css))""", text)  # nothing fetched
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium executable (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(path.as_uri())
        rows = page.locator("#metrics tr")
        assert rows.count() == 1 + len(outcome["results"])
        names = [rows.nth(k).locator("td").first.inner_text() for k in range(1, rows.count())]
        assert names == list(outcome["results"])
        best = outcome["results"]["two-stage"]["ndcg@10"]
        if best == max(m.get("ndcg@10", 0) for m in outcome["results"].values()):
            assert page.locator("#metrics tr", has_text="two-stage").locator("td.best").count() >= 1
        assert page.locator("figure svg").count() == 4  # ndcg, recall, rmse; the learning curves
        shown = page.locator("body").inner_text()
        assert f"{best:.4f}" in page.content() and "higher is better" in page.content()
        assert "Learning curves" in shown and "The chosen blend" in shown
        assert page.locator("table.blend tr", has_text="full").count() == 1
        browser.close()
