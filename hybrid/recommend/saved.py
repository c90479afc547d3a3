"""Loading any saved recommender: the kind in its manifest says which class reads the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import MANIFEST


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
    manifest = Path(path) / MANIFEST
    try:
        kind = json.loads(manifest.read_text()).get("kind")
    except FileNotFoundError:
        raise InputFormatError(f"{path}: not a saved recommender (no {MANIFEST})") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise InputFormatError(f"{manifest}: not a readable manifest ({exc})") from None
    readers = _readers()
    if kind not in readers:
        raise InputFormatError(f"{path}: a saved {kind!r}, which no recommender reads; "
                               f"this version reads {', '.join(sorted(readers))}")
    return readers[kind].load(path)
