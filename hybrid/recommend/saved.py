"""Loading any saved recommender: the kind in its manifest says which class reads the folder."""

from __future__ import annotations

import os

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import load_manifest


#: kind in the manifest -> (module, class) that reads it; only that module is imported (the
#: HybridRecommender's imports TensorFlow, the two-stage one's does not)
READERS = {"two-stage": ("hybrid.recommend.two_stage", "TwoStageRecommender"),
           "hybrid": ("hybrid.recommend.hybrid_recommender", "HybridRecommender")}


def load(path: str | os.PathLike):
    """The recommender saved in folder ``path`` by any recommender's ``save``.

    Parameters
    ----------
    path : folder written by ``TwoStageRecommender.save`` or ``HybridRecommender.save``.

    Returns
    -------
    The fitted recommender, of the class that saved it.

    Raises
    ------
    InputFormatError
        The folder holds no manifest, a manifest of an unknown kind, or another format version.

    Example:
        >>> import hybrid, tempfile
        >>> hybrid.load(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hybrid.core.errors.InputFormatError: ...: not a saved recommender (no manifest.json)
    """
    import importlib

    kind = load_manifest(path).get("kind")
    if kind not in READERS:
        raise InputFormatError(f"{path}: a saved {kind!r}, which no recommender reads; "
                               f"this version reads {', '.join(sorted(READERS))}")
    module, name = READERS[kind]
    return getattr(importlib.import_module(module), name).load(path)
