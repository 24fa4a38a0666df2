"""rechash.codes.bits: the bit order contract, validation, layouts and distances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rechash.codes.bits import (
    as_words,
    binarize,
    bit_fields,
    check_same_bits,
    cluster_centers,
    clustered_codes,
    field_bounds,
    from_words,
    hamming_distances,
    hamming_rows,
    pack_bits,
    popcount,
    to_signs,
    to_word_major,
    unpack_bits,
    validate_packed,
)
from rechash.errors import DataError


def test_documented_bit_order():
    bits = np.zeros((1, 16), dtype=np.uint8)
    bits[0, 0] = 1  # bit 0 -> byte 0, mask 0x80
    bits[0, 9] = 1  # bit 9 -> byte 1, mask 0x40
    assert pack_bits(bits).tolist() == [[0x80, 0x40]]
    assert binarize(np.array([[0.5, 0.0, -1.0, 2.0, 0, 0, 0, 0]])).tolist() == [[0b10010000]]  # 0 -> bit 0


def test_pack_accepts_01_bool_and_signs():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (5, 24), dtype=np.uint8)
    packed = pack_bits(bits)
    np.testing.assert_array_equal(pack_bits(bits.astype(bool)), packed)
    np.testing.assert_array_equal(pack_bits(bits.astype(np.int8) * 2 - 1), packed)
    np.testing.assert_array_equal(unpack_bits(packed), bits)
    np.testing.assert_array_equal(to_signs(packed), bits * 2.0 - 1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 12)), "multiple of 8"),
        (np.full((2, 8), 2), "0/1"),
        (np.zeros(8), "2-D"),
    ],
)
def test_pack_rejects(bad, match):
    with pytest.raises(DataError, match=match):
        pack_bits(bad)


def test_validation_and_bit_checks():
    assert validate_packed(np.zeros((3, 16), np.uint8)) == 128
    with pytest.raises(DataError, match="uint8"):
        validate_packed(np.zeros((3, 16), np.int64))
    with pytest.raises(DataError, match="NaN"):
        binarize(np.array([[np.nan] * 8]))
    assert check_same_bits(np.zeros(8, np.uint8), 64).shape == (1, 8)  # one code as a row
    with pytest.raises(DataError, match="index holds 128"):
        check_same_bits(np.zeros((1, 8), np.uint8), 128)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([8, 16, 40, 64, 72, 128, 200]), st.integers(1, 6))
def test_layouts_and_distances(seed, n_bits, n_fields):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (13, n_bits), dtype=np.uint8)
    codes = pack_bits(bits)
    naive = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(codes, codes, block=4), naive)
    np.testing.assert_array_equal(hamming_rows(codes, codes[::-1]), naive[np.arange(13), np.arange(13)[::-1]])
    words = as_words(codes)
    assert words.dtype == np.uint64 and words.shape == (13, -(-n_bits // 64))
    np.testing.assert_array_equal(popcount(words[:, None, :] ^ words[None, :, :]).sum(-1), naive)  # padding is neutral
    np.testing.assert_array_equal(from_words(words, n_bits), codes)
    np.testing.assert_array_equal(to_word_major(codes), words.T)
    bounds = field_bounds(n_bits, n_fields)
    assert bounds[0] == 0 and bounds[-1] == n_bits and np.ptp(np.diff(bounds)) <= 1
    if np.diff(bounds).max() <= 57:
        keys = bit_fields(codes, bounds)
        many = bit_fields(np.repeat(codes, 2, axis=0), bounds)[::2]  # the vectorised path
        np.testing.assert_array_equal(keys, many)
        for f, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            want = [int("".join(map(str, row[a:b])), 2) for row in bits]
            assert keys[:, f].tolist() == want  # most significant bit = lowest bit index
        # substring distances add up to the full distance
        np.testing.assert_array_equal(popcount(keys[:, None, :] ^ keys[None, :, :]).sum(-1), naive)


def test_bit_fields_rejects_bad_bounds():
    codes = np.zeros((2, 8), np.uint8)
    with pytest.raises(DataError, match="bounds"):
        bit_fields(codes, [0, 32, 60])
    with pytest.raises(DataError, match="substrings"):
        field_bounds(16, 17)


def test_clustered_codes_are_deterministic_and_clustered():
    a = clustered_codes(500, 64, n_clusters=10, flip=0.05, seed=4)
    b = clustered_codes(500, 64, n_clusters=10, flip=0.05, seed=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (500, 8) and a.dtype == np.uint8
    q = clustered_codes(20, 64, centers=cluster_centers(10, 64, seed=4), flip=0.05, seed=5)
    near = hamming_distances(q, a).min(axis=1)
    assert near.mean() < 10  # queries from the same clusters sit close to some item
    far = hamming_distances(clustered_codes(20, 64, n_clusters=10, seed=99), a).min(axis=1)
    assert far.mean() > near.mean()
