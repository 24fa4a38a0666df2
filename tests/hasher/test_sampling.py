from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.hasher.sampling import NegativeSampler, PairSampler, accidental_hits, sample_history


def test_accidental_hits_match_dense_comparison():
    rng = np.random.default_rng(0)
    pos, cand = rng.integers(0, 20, 50), rng.integers(0, 20, 70)
    rows, cols = accidental_hits(pos, cand)
    dense = np.argwhere(pos[:, None] == cand[None, :])
    got = np.array(sorted(zip(rows.tolist(), cols.tolist())))
    assert np.array_equal(got, dense)


def test_pairs_cover_every_interaction_once():
    m = sp.random(30, 40, density=0.2, format="csr", random_state=0)
    s = PairSampler(m, 16)
    pairs = np.concatenate([np.stack(b, 1) for b in s.epoch(np.random.default_rng(0))])
    assert len(pairs) == m.nnz and len(s) == -(-m.nnz // 16)
    assert len({tuple(p) for p in pairs}) == m.nnz


def test_history_sampling_leaves_target_out():
    m = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=np.float32))
    items, w = sample_history(m, np.array([0, 1, 2]), np.array([1, 4, 0]), cap=3, rng=np.random.default_rng(0))
    assert items.shape == (3, 3)
    assert not ((items == np.array([[1], [4], [0]])) & (w > 0)).any()
    assert w[2].sum() == 0  # the only item is the target
    assert sorted(items[0][w[0] > 0].tolist()) == [0, 2]


def test_popularity_negatives_follow_counts():
    counts = np.array([1000] + [10] * 20)
    s = NegativeSampler(counts, "popularity")
    rng = np.random.default_rng(0)
    draws = np.concatenate([s.sample(20, rng) for _ in range(250)])
    assert (draws == 0).mean() > 0.75 and s.log_q[0] > 0 > s.log_q[1]
    assert np.allclose(NegativeSampler(counts, "uniform").log_q, 0)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_negatives_at_least_the_catalog_are_every_item_once(kind):
    s = NegativeSampler(np.array([50, 1, 1, 7]), kind)
    assert s.exhaustive(4) and not s.exhaustive(3)
    for k in (4, 9):
        assert s.sample(k, np.random.default_rng(0)).tolist() == [0, 1, 2, 3]
    assert len(s.sample(3, np.random.default_rng(0))) == 3


def test_fit_cli(tmp_path, split):
    from rechash.cli import main
    from rechash.hasher.twin_tower import TwinTowerHasher

    def write(inter, path):
        m = inter.matrix
        with open(path, "w") as fh:
            for u in range(m.shape[0]):
                items = m.indices[m.indptr[u] : m.indptr[u + 1]]
                if len(items):
                    fh.write(" ".join(map(str, [u, *items])) + "\n")

    write(split.train, tmp_path / "train.txt")
    write(split.valid, tmp_path / "valid.txt")
    out = tmp_path / "model"
    args = [
        "fit",
        str(tmp_path / "train.txt"),
        "--valid",
        str(tmp_path / "valid.txt"),
        "--bits",
        "16",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--negatives",
        "32",
        "--batch-size",
        "256",
        "--teacher",
        "auto",
        "--no-progress",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    m = TwinTowerHasher.load(out)
    assert m.bits == 16 and m.encode_items().shape[1] == 2
    # the fit's provenance travels with the model: the tuned teacher and why training stopped
    assert m.teacher_info_["kind"] == "als" and m.stop_reason_ == "epoch cap" and m.holdout_ == 0
    assert m.config.epochs == 1 and m.config.negatives == 32
    assert main(args[:-4] + ["--teacher", "nope"]) == 2


def test_fit_cli_defaults_are_the_library_defaults():
    import typer

    import rechash.cli.model  # noqa: F401  (registers the command)
    from rechash.cli import app
    from rechash.hasher.config import TrainConfig

    cmd = typer.main.get_command(app).commands["fit"]
    defaults = {p.name: p.default for p in cmd.params}
    cfg = TrainConfig().to_dict()
    assert set(cfg) <= set(defaults)  # every TrainConfig field is an option, generated from the field
    assert {k: defaults[k] for k in cfg} == cfg
    helps = {p.name: p.help for p in cmd.params}
    assert all(helps[k] for k in cfg)
