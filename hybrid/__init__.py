"""hybrid: a hybrid content + collaborative-filtering recommender with a real text pipeline.

Layers, lowest first: ``schema``/``io``/``errors`` -> ``formats``/``ingest`` -> ``text`` ->
``vectors`` -> ``ids``/``dataset`` -> ``steps``/``runner`` -> ``cli``.
"""

__version__ = "0.1.0"
