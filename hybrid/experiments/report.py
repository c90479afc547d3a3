"""The evaluation as pictures and one page: bar charts whose axes show the differences, and
``report.html``, a self-contained page (inline SVG, no script, nothing fetched) with the metrics
table, the charts, the Keras models' learning curves and the two-stage recommender's blend.
"""

from __future__ import annotations

import html
import io
import os

# lower is better for these; higher for the other ranking metrics; neither for popularity
LOWER_IS_BETTER = ("rmse", "mae", "fit_seconds")
NEITHER = ("mean_popularity",)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text in SVG: readable, searchable, small
    return plt


def bar_chart(results: dict, metric: str):
    """A horizontal bar per model (best at the top) with its value written on the bar; the value
    axis starts just below the smallest value, so that close values look different (the axis
    says where it starts). None when no model has the metric."""
    plt = _pyplot()
    named = [(name, m[metric]) for name, m in results.items() if isinstance(m.get(metric), (int, float))]
    if not named:
        return None
    lower = metric.split("@")[0] in LOWER_IS_BETTER
    named.sort(key=lambda nv: nv[1], reverse=not lower)
    names, values = [n for n, _ in named][::-1], [v for _, v in named][::-1]
    low, high = min(values), max(values)
    spread = (high - low) or abs(high) or 1.0
    start = max(0.0, low - 0.6 * spread) if low >= 0 else low - 0.6 * spread
    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.3))
    colours = ["tab:blue" if results[n].get("kind") == "keras" else "tab:grey" for n in names]
    bars = axis.barh(names, [v - start for v in values], left=start, color=colours)
    axis.bar_label(bars, labels=[f"{v:.4f}" for v in values], padding=3, fontsize=9)
    axis.set_xlim(start, high + 0.35 * spread)
    better = "lower is better" if lower else "higher is better"
    axis.set_xlabel(f"{metric} ({better}; the axis starts at {start:.4g})")
    axis.set_title(f"{metric} by model (blue: trained models, grey: baselines)", fontsize=10)
    figure.tight_layout()
    return figure


def learning_curves(results: dict):
    """Training and validation loss by epoch of every model with a training history, one panel
    each; None when none has one."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    trained = [(name, m["history"]) for name, m in results.items() if m.get("history")]
    if not trained:
        return None
    figure, axes = plt.subplots(1, len(trained), figsize=(3.6 * len(trained), 3), squeeze=False)
    for axis, (name, history) in zip(axes[0], trained):
        for key in ("loss", "val_loss"):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                axis.plot(epochs, history[key], marker="o", label="training" if key == "loss" else "validation")
        best = results[name].get("best_epoch")
        if best:
            axis.axvline(best, color="tab:green", linestyle=":", label=f"best epoch {best}")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("loss")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def save_chart(results: dict, path: str | os.PathLike, metric: str) -> None:
    """``bar_chart`` as an image file (an empty chart saying so when no model has the metric)."""
    plt = _pyplot()
    figure = bar_chart(results, metric)
    if figure is None:
        figure, axis = plt.subplots(figsize=(7.5, 1.5))
        axis.axis("off")
        axis.text(0.5, 0.5, f"no model measured {metric}", ha="center", va="center")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _svg(figure) -> str:
    if figure is None:
        return ""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    _pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(results: dict, columns: list[str]) -> str:
    best = {}
    for column in columns:
        values = [m[column] for m in results.values() if isinstance(m.get(column), (int, float))]
        if len(values) > 1 and column.split("@")[0] not in NEITHER:
            best[column] = min(values) if column.split("@")[0] in LOWER_IS_BETTER else max(values)
    rows = ["<tr><th>model</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"]
    for name, metrics in results.items():
        if metrics.get("skipped"):
            rows.append(f"<tr><td>{html.escape(name)}</td><td colspan='{len(columns)}' class='note'>skipped: "
                        f"{html.escape(str(metrics['skipped']))}</td></tr>")
            continue
        cells = []
        for column in columns:
            value = metrics.get(column)
            strong = column in best and value == best[column]
            cells.append(f"<td class='{'best' if strong else ''}'>{_cell(value)}</td>")
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return "<table id='metrics'>" + "".join(rows) + "</table>"


def _blend(results: dict) -> str:
    parts = []
    for name, metrics in results.items():
        weights = metrics.get("weights")
        if not weights:
            continue
        names = sorted({p for case in weights.values() for p in case})
        rows = ["<tr><th>case</th>" + "".join(f"<th>{html.escape(p)}</th>" for p in names) + "</tr>"]
        for case, chosen in weights.items():
            rows.append(f"<tr><td>{html.escape(case)}</td>" +
                        "".join(f"<td>{chosen[p]:.2f}</td>" if p in chosen else "<td>–</td>" for p in names) + "</tr>")
        parts.append(f"<h3>{html.escape(name)}</h3><table class='blend'>{''.join(rows)}</table>")
    if not parts:
        return ""
    return ("<h2>The chosen blend</h2><p class='note'>Each case's weights on the standardised part scores, chosen "
            "on validation likes carved from the training rows (full: a known user; no_network: a new user with "
            "liked products; retrieval_only: a new user from words; unliked: products nobody liked in "
            "training); equal weights where the recommender was fitted without a validation share.</p>" + "".join(parts))


def html_report(outcome: dict, heading: str, k: int) -> str:
    """The whole page for ``evaluate_all``'s ``outcome``."""
    results = outcome["results"]
    columns = ["rmse", "mae"] + [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage",
                                                        "mean_popularity")] + ["fit_seconds"]
    columns = [c for c in columns if any(c in m for m in results.values())]
    charts = "".join(f"<figure>{svg}</figure>" for svg in (_svg(bar_chart(results, m))
                                                         for m in (f"ndcg@{k}", f"recall@{k}", "rmse")) if svg)
    curves = _svg(learning_curves(results))
    split = ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in outcome["split"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hybrid evaluation: {html.escape(heading)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 64rem; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; display: block; overflow-x: auto; }}
th, td {{ border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
td.best {{ font-weight: bold; background: #eaf4ea; }}
.note {{ color: #666; font-size: 0.85rem; }}
figure {{ margin: 0.5rem 0; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Evaluation</h1>
<p>{html.escape(heading)}. Split: {html.escape(split)}. Best of each column in bold.</p>
<h2>Metrics</h2>
{_table(results, columns)}
<h2>Charts</h2>
{charts}
{"<h2>Learning curves</h2><figure>" + curves + "</figure>" if curves else ""}
{_blend(results)}
</body></html>
"""


def write_report(outcome: dict, path: str | os.PathLike, heading: str, k: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(html_report(outcome, heading, k))
