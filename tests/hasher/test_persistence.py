from __future__ import annotations

import json

import pytest

from rechash.errors import ModelError
from rechash.hasher.twin_tower import TwinTowerHasher


@pytest.fixture
def model_dir(fitted, tmp_path):
    return fitted.save(tmp_path / "model")


def test_config_states_format_bits_versions(model_dir):
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["bits"] == 16
    assert {"torch", "numpy", "rechash"} <= set(cfg["library_versions"])
    assert cfg["training"]["negatives"] == 64
    ranker = {"ranker.txt", "ranker.npz"} if cfg["training_run"]["ranker"]["kept"] else set()  # the fit's decision
    assert (
        set(cfg["files"]) == {"params.npz", "floats.npz", "user_ids.parquet", "item_ids.parquet", "seen.npz"} | ranker
    )


@pytest.mark.parametrize("name", ["params.npz", "floats.npz", "user_ids.parquet"])
def test_corrupted_file_names_the_path(model_dir, name):
    f = model_dir / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=str(f)):
        TwinTowerHasher.load(model_dir)


def test_truncated_and_missing_files(model_dir):
    f = model_dir / "floats.npz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated"):
        TwinTowerHasher.load(model_dir)
    f.unlink()
    with pytest.raises(ModelError, match="missing"):
        TwinTowerHasher.load(model_dir)


def test_bad_config(model_dir, tmp_path):
    cfg = model_dir / "config.json"
    text = cfg.read_text()
    cfg.write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match="config.json"):
        TwinTowerHasher.load(model_dir)
    cfg.write_text(text.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ModelError, match="format_version"):
        TwinTowerHasher.load(model_dir)
    cfg.unlink()
    with pytest.raises(ModelError, match="config.json"):
        TwinTowerHasher.load(model_dir)
    with pytest.raises(ModelError, match="no such directory"):
        TwinTowerHasher.load(tmp_path / "nope")


def test_tampered_array_with_matching_checksum_is_rejected(model_dir):
    import hashlib

    import numpy as np

    np.savez(model_dir / "floats.npz", user_z=np.zeros((3, 16), np.float32), item_z=np.zeros((3, 16), np.float32))
    cfg = json.loads((model_dir / "config.json").read_text())
    f = model_dir / "floats.npz"
    cfg["files"]["floats.npz"] = {"bytes": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="floats.npz"):
        TwinTowerHasher.load(model_dir)


def test_the_model_owns_its_state(fitted, model_dir):
    """``from_state(to_state())`` rebuilds the model in memory; ``from_config(get_config())``
    an unfitted one with the same options; a saved directory keeps the format-1 key order."""
    import numpy as np

    again = TwinTowerHasher.from_state(fitted.to_state())
    np.testing.assert_array_equal(again.encode_users(), fitted.encode_users())
    np.testing.assert_array_equal(again.encode_items(), fitted.encode_items())
    np.testing.assert_array_equal(again.user_floats(), fitted.user_floats())
    assert again.training_run() == fitted.training_run() and (again.ranker_ is None) == (fitted.ranker_ is None)
    fresh = TwinTowerHasher.from_config(fitted.get_config())
    assert fresh.get_config() == fitted.get_config() and fresh.towers is None
    keys = list(json.loads((model_dir / "config.json").read_text()))
    assert keys == ["format_version", "kind", "bits", "n_users", "n_items", "towers", "training",
                    "library_versions", "fit_seconds", "history", "training_run", "files"]  # fmt: skip
