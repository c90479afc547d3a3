"""The Keras networks, their training and the retrieval towers. Importing this package chooses
Keras' TensorFlow backend, imports TensorFlow quietly, before any module of it imports Keras, and
makes its ops deterministic."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr sent to /dev/null meanwhile: its C++ start-up
    lines (absl's "All log messages before absl::InitializeLog()", oneDNN's notice) are written
    there before ``TF_CPP_MIN_LOG_LEVEL`` applies. An import that fails still raises."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return  # already imported, or the user asked to see TensorFlow's log
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no stderr to redirect (a closed or odd one): import as is
        return
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


_import_tensorflow_quietly()


def _deterministic() -> None:
    """Every TensorFlow op deterministic: with the seeds the trainers set, a fit gives the same
    weights in every process (multi-threaded CPU kernels otherwise sum in the order their threads
    finish, and early stopping turns those last bits into other epochs and other blends)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


_deterministic()
