"""The Keras networks, their training and the retrieval towers. Importing this package chooses
Keras' TensorFlow backend and quiets TensorFlow's C++ log, before any module of it imports Keras."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
