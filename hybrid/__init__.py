"""hybrid: a hybrid content + collaborative-filtering recommender with a real text pipeline.

    >>> from hybrid import TwoStageRecommender, HybridRecommender, load  # doctest: +SKIP

Packages, lowest layer first (a module imports only from its own layer and those below it):
``core`` (errors, settings, progress, persistence, Spark session) -> ``data`` (schema, readers,
ingest, text, ids, encoded dataset) -> ``content`` (word vectors, TF-IDF terms) -> ``evaluation``
(splits, metrics) -> ``models`` (index-level scorers; ``models.keras``: the networks) ->
``recommend`` (id-level recommenders) -> ``experiments`` (protocols) -> ``pipeline`` (runner,
stages) -> ``serving`` (HTTP) -> ``cli``. The names below are imported on first use, so
``import hybrid`` alone loads neither TensorFlow nor pandas.
"""

__version__ = "0.1.0"

_LAZY = {
    "TwoStageRecommender": "hybrid.recommend.two_stage",
    "HybridRecommender": "hybrid.recommend.hybrid_recommender",
    "load": "hybrid.recommend.saved",
    "HybridError": "hybrid.core.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hybrid' has no attribute {name!r}")
