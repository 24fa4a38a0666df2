"""SideFeatures: alignment to an IdMap, kinds, counts, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rechash.data import IdMap, SideFeatures, load_side_features
from rechash.errors import DataError


def test_from_frame_aligns_and_encodes():
    ids = IdMap([1, 2, 3, 4])
    frame = pd.DataFrame(
        {
            "item_id": ["3", "1", "9", "2"],  # text ids match an integer map
            "genre": ["b", "a", "a", None],
            "tags": ["x y", "", "z", "y x y"],
            "price": [3.5, 1.0, 2.0, np.nan],
        }
    )
    feats = SideFeatures.from_frame(frame, ids, "item_id", kinds={"tags": "multi"})
    assert (feats.missing, feats.unmatched, feats.names) == (1, 1, ["genre", "tags", "price"])
    genre = feats["genre"]
    assert genre.kind == "categorical" and list(genre.vocab) == [None, "a", "b"]
    assert genre.values.tolist() == [1, 0, 2, 0]  # ids 1, 2 (missing value), 3, 4 (no row)
    tags = feats["tags"]
    assert tags.offsets.tolist() == [0, 0, 3, 5, 5]
    assert [tags.vocab[c] for c in tags.values] == ["y", "x", "y", "x", "y"]
    assert list(tags.vocab) == [None, "x", "y"]  # tokens of matched rows only ("z" belongs to id 9)
    assert tags.to_csr().shape == (4, 3) and tags.to_csr()[1].nnz == 2
    price = feats["price"]
    assert price.values[0] == 1.0 and np.isnan(price.values[3])
    z = feats.numeric_matrix()
    assert z.shape == (4, 1) and abs(z[:, 0].mean()) < 1e-6 and z[3, 0] == 0
    sub = feats.take(np.array([2, 0]), IdMap([3, 1]))
    assert sub["genre"].values.tolist() == [2, 1] and sub["tags"].offsets.tolist() == [0, 2, 2]


def test_duplicate_and_empty_ids_raise():
    ids = IdMap([1, 2])
    with pytest.raises(DataError, match="row 3: id 1 appears twice"):
        SideFeatures.from_frame(pd.DataFrame({"id": [1, 2, 1], "f": [1, 2, 3]}), ids, "id")
    with pytest.raises(DataError, match="row 2: empty or missing id"):
        SideFeatures.from_frame(pd.DataFrame({"id": ["1", " "], "f": [1, 2]}), ids, "id")
    with pytest.raises(DataError, match="kind must be one of"):
        SideFeatures.from_frame(pd.DataFrame({"id": [1], "f": [1]}), ids, "id", kinds={"f": "image"})


def test_load_side_features_csv_and_bad_number(tmp_path):
    path = tmp_path / "users.csv"
    pd.DataFrame({"user_id": ["a", "b"], "age": [30, 41]}).to_csv(path, index=False)
    feats = load_side_features(path, IdMap(["b", "c"]))
    assert feats["age"].kind == "numeric" and feats["age"].values[0] == 41 and np.isnan(feats["age"].values[1])
    bad = tmp_path / "x.user"
    bad.write_text("user_id:token\tage:float\n1\t20\n2\told\n")
    with pytest.raises(DataError, match=r"x.user:3: column 'age': expected a number, got 'old'"):
        load_side_features(bad, IdMap([1, 2]))


def test_side_ids_follow_the_canonical_integer_rule(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,genre\n7,a\n007,b\n")
    feats = load_side_features(path, IdMap([7, 8]))
    assert feats["genre"].values.tolist() == [1, 0] and feats.unmatched == 1  # "007" is not item 7
    vec = tmp_path / "v.item"
    vec.write_text("item_id:token\temb:float_seq\n7\t0.1 0.2\n")
    with pytest.raises(DataError, match="v.item:1: column 'emb' has type float_seq"):
        load_side_features(vec, IdMap([7]))
