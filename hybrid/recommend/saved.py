"""Loading any saved recommender: the kind in its manifest says which class reads the folder."""

from __future__ import annotations

import os

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import load_manifest


def _readers() -> dict:
    from hybrid.recommend import hybrid_recommender, two_stage

    return {two_stage.KIND: two_stage.TwoStageRecommender, hybrid_recommender.KIND: hybrid_recommender.HybridRecommender}


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
    kind = load_manifest(path).get("kind")
    readers = _readers()
    if kind not in readers:
        raise InputFormatError(f"{path}: a saved {kind!r}, which no recommender reads; "
                               f"this version reads {', '.join(sorted(readers))}")
    return readers[kind].load(path)
