"""FloatEmbeddings carry the external ids of their rows: realigned to a dataset, or refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rechash.data import IdMap
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError

N_USERS, N_ITEMS, DIM = 6, 9, 4


@pytest.fixture
def data_maps() -> tuple[IdMap, IdMap]:
    return IdMap([f"u{k}" for k in range(N_USERS)]), IdMap(np.arange(N_ITEMS) * 10 + 100)


@pytest.fixture
def factors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_USERS, DIM)), rng.normal(size=(N_ITEMS, DIM))


def _score_by_id(emb: FloatEmbeddings) -> dict:
    """{(external user, external item): score} over every pair."""
    scores = emb.scores(np.arange(len(emb.user_factors)))
    users, items = emb.user_ids.external_ids, emb.item_ids.external_ids
    return {(u, i): scores[a, b] for a, u in enumerate(users.tolist()) for b, i in enumerate(items.tolist())}


@pytest.mark.parametrize("as_idmap", [True, False])
def test_shuffled_ids_realign_to_the_same_scores(data_maps, factors, as_idmap):
    users, items = data_maps
    U, V = factors
    rng = np.random.default_rng(1)
    pu, pi = rng.permutation(N_USERS), rng.permutation(N_ITEMS)
    own_u, own_i = users.external_ids[pu], items.external_ids[pi]
    if as_idmap:
        own_u, own_i = IdMap(own_u), IdMap(own_i)
    else:
        own_u, own_i = own_u.tolist(), own_i.tolist()  # plain sequences in row order
    shuffled = FloatEmbeddings(U[pu], V[pi], user_ids=own_u, item_ids=own_i)
    assert isinstance(shuffled.user_ids, IdMap) and isinstance(shuffled.item_ids, IdMap)
    aligned = shuffled.aligned_to(users, items)
    reference = FloatEmbeddings(U, V, user_ids=users, item_ids=items)
    np.testing.assert_array_equal(aligned.user_factors, reference.user_factors)
    np.testing.assert_array_equal(aligned.item_factors, reference.item_factors)
    assert aligned.user_ids == users and aligned.item_ids == items
    before, after = _score_by_id(shuffled), _score_by_id(aligned)
    assert before.keys() == after.keys() and all(before[k] == after[k] for k in before)
    # the data's maps may be plain sequences too; already aligned rows come back unchanged
    again = aligned.aligned_to(users.external_ids.tolist(), items.external_ids)
    np.testing.assert_array_equal(again.user_factors, aligned.user_factors)


def test_mismatched_ids_are_refused_naming_the_first(data_maps, factors):
    users, items = data_maps
    U, V = factors
    emb = FloatEmbeddings(U, V, user_ids=users, item_ids=items)
    other = IdMap(["u0", "u1", "x9", "u3", "x7", "u5"])
    with pytest.raises(
        DataError,
        match=r"^teacher: user 'x9' of the data is not among the user_ids of the "
        r"embeddings \(2 missing\)$",
    ):
        emb.aligned_to(other, items, "teacher")
    fewer = IdMap(items.external_ids[1:])
    with pytest.raises(DataError, match=r"^embeddings: item 100 of the embeddings is not in the data \(1 extra\)$"):
        emb.aligned_to(users, fewer)
    more = IdMap([f"u{k}" for k in range(N_USERS + 1)])
    with pytest.raises(DataError, match=r"^embeddings: user 'u6' of the data is not among"):
        emb.aligned_to(more, items)
    as_text = IdMap([str(v) for v in items.external_ids])  # same numbers, other kind
    with pytest.raises(
        DataError,
        match=r"^embeddings: item '100' of the data is not among the item_ids of the "
        r"embeddings \(9 missing: the embeddings' item ids are integers, the data's "
        r"strings\)$",
    ):
        emb.aligned_to(users, as_text)


def test_bare_arrays_warn_when_counts_match_and_are_refused_otherwise(data_maps, factors):
    users, items = data_maps
    U, V = factors
    with pytest.warns(
        UserWarning,
        match=r"no user_ids given, the 6 user rows are assumed to follow the data's "
        r"internal user id order",
    ) as record:
        out = FloatEmbeddings(U, V, item_ids=items).aligned_to(users, items)
    assert len(record) == 1  # the item side carries ids: nothing to warn about
    np.testing.assert_array_equal(out.user_factors, U.astype(np.float32))
    assert out.user_ids == users
    with pytest.raises(DataError, match=r"^embeddings: 5 user rows but the data has 6 users, and no user_ids"):
        FloatEmbeddings(U[1:], V).aligned_to(users, items)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rows with ids never warn
        FloatEmbeddings(U, V, user_ids=users, item_ids=items).aligned_to(users, items)


def test_ids_are_checked_at_construction(factors):
    U, V = factors
    with pytest.raises(DataError, match=r"^embeddings: 5 user_ids for 6 user rows$"):
        FloatEmbeddings(U, V, user_ids=list(range(5)))
    with pytest.raises(DataError, match=r"^embeddings: item_ids: IdMap: external ids must be unique, 3 appears twice$"):
        FloatEmbeddings(U, V, item_ids=np.array([0, 1, 2, 3, 3, 5, 6, 7, 8]))
