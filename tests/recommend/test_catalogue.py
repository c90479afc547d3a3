"""The catalogue's persistence (``hybrid.recommend.catalogue``)."""

import numpy as np


def test_a_saved_catalogue_maps_its_texts_and_vectors(tmp_path):
    """Texts are an Arrow IPC file and vectors a .npy, both memory-mapped on load; appending
    after loading works, and saving over the files it maps."""
    from hybrid.data.ids import IdMap
    from hybrid.recommend.catalogue import Catalogue

    texts = ["red fender strap", None, "usb cable " * 50]
    cat = Catalogue(IdMap(["a", "b", "c"], "item"), np.arange(6, dtype=np.float32).reshape(3, 2), ["A", None, "C"],
                    [True, False, True], texts)
    cat.save(tmp_path)
    loaded = Catalogue.load(tmp_path)
    assert [loaded.text(k) for k in range(3)] == texts and loaded.titles.tolist() == ["A", None, "C"]
    assert not loaded.vectors.flags.writeable and loaded.cold.tolist() == [False, True, False]
    loaded.append(["d"], np.ones((1, 2), np.float32), ["D"], ["new text"])
    loaded.save(tmp_path)  # over the files it maps
    again = Catalogue.load(tmp_path)
    assert [again.text(k) for k in range(4)] == texts + ["new text"] and again.vectors[3].tolist() == [1.0, 1.0]
