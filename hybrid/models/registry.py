"""Every baseline by the name the command line and the evaluation protocols use
(``--baselines``): name -> a callable that takes the baseline's settings and returns it unfitted."""

from __future__ import annotations

from hybrid.models.base import Baseline
from hybrid.models.baselines import EASE, Biases, ContentOnly, GlobalMean, ItemKNN, Popularity, RandomRanking, UserKNN


def _spark_als(**settings) -> Baseline:
    from hybrid.models.als import SparkALS

    return SparkALS(**settings)


def _spark_implicit_als(**settings) -> Baseline:
    from hybrid.models.als import SparkImplicitALS

    return SparkImplicitALS(**settings)


BASELINES = {cls.name: cls for cls in (GlobalMean, Biases, Popularity, ItemKNN, UserKNN, ContentOnly, EASE,
                                       RandomRanking)}
# Spark MLlib ALS (hybrid.models.als): fitted by Spark, so imported only when asked for
BASELINES["als"] = _spark_als
BASELINES["als-implicit"] = _spark_implicit_als
