"""The Spark session of this process: where Spark jobs run (``--spark-master``), with which
settings, and the checks that Spark and Java are there. Used by the Spark data stages
(``hybrid.pipeline.spark_stages``) and the Spark ALS baselines (``hybrid.models.als``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from hybrid.core.errors import ArgumentError, StageError

DEFAULT_MASTER = "local[*]"
#: Settings this engine starts Spark with unless the user sets them (``--spark-conf``).
SPARK_DEFAULTS = {
    "spark.driver.memory": "4g",  # local mode: the executors live in the driver's JVM
    "spark.sql.shuffle.partitions": "32",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "true",
}
_settings: dict = {"master": DEFAULT_MASTER, "conf": {}}


def parse_spark_conf(items: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--spark-conf``) as a dict; a malformed one is an ArgumentError."""
    conf: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ArgumentError(f"--spark-conf takes KEY=VALUE, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def read_spark_conf_file(path: str | os.PathLike) -> dict[str, str]:
    """Settings from a file in the format of Spark's ``spark-defaults.conf`` (``key value`` or
    ``key=value`` per line, ``#`` comments)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ArgumentError(f"--spark-conf-file {path}: {exc.strerror or exc}") from None
    conf: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=") if "=" in line.split(None, 1)[0] else line.partition(" ")
        if not sep or not key.strip() or not value.strip():
            raise ArgumentError(f"--spark-conf-file {path}: line {number} is not 'key value': {line!r}")
        conf[key.strip()] = value.strip()
    return conf


def configure(master: str | None = None, conf: dict[str, str] | None = None) -> None:
    """Where the Spark jobs of this process run (``--spark-master``) and with which settings.

    They apply when the process starts its SparkSession (the first Spark stage); Spark keeps
    that session for the life of the process, so a later call with another master or settings
    does not move a session already running."""
    _settings["master"] = master or DEFAULT_MASTER
    _settings["conf"] = dict(conf or {})


def check_available() -> None:
    """A clear error when the Spark extra or Java is missing (before any stage runs)."""
    try:
        import pyspark  # noqa: F401 - only whether it is there
    except ImportError:
        raise StageError("the Spark engine needs pyspark: pip install -e '.[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise StageError("the Spark engine needs Java 17 or later: install a JDK "
                         "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def session():
    """The SparkSession of the configured master (started once per process)."""
    check_available()
    from pyspark.sql import SparkSession

    # executors of a local master run this interpreter (on a cluster, set PYSPARK_PYTHON)
    if _settings["master"].startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(_settings["master"]).appName("hybrid")
    for key, value in {**SPARK_DEFAULTS, **_settings["conf"]}.items():
        builder = builder.config(key, value)
    # pyspark 4.x warns at every pandas/Arrow call that pandas 3 is untested; these jobs pass
    # Arrow batches, and the engine's tests compare every output with the local engine's
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def ensure_checkpoint_dir(spark) -> None:
    """A checkpoint directory for iterative jobs (ALS): a temporary folder, removed at exit,
    when a local master has none; a cluster needs one on shared storage
    (``--spark-conf spark.checkpoint.dir=hdfs://...``), which Spark then uses."""
    context = spark.sparkContext
    if context.getCheckpointDir() is None and _settings["master"].startswith("local"):
        import atexit

        folder = tempfile.mkdtemp(prefix="hybrid-spark-checkpoints-")
        atexit.register(shutil.rmtree, folder, True)
        context.setCheckpointDir(folder)
