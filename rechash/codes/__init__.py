"""Binary codes: ``bits`` (the one bit order: pack, unpack, popcount distances),
``binarizers`` (post-hoc ITQ and random-rotation LSH from float embeddings), ``diagnostics``
(bit balance, correlation, duplicate codes) and ``export`` (codes for another serving stack).

The functions of ``bits`` are importable from here too (``from rechash.codes import
pack_bits``), as they were when ``rechash.codes`` was one module; they need only numpy.
"""

from rechash.codes.bits import (
    binarize,
    check_same_bits,
    hamming_distances,
    hamming_rows,
    pack_bits,
    popcount,
    to_signs,
    unpack_bits,
    validate_packed,
)

__all__ = [
    "binarize",
    "check_same_bits",
    "hamming_distances",
    "hamming_rows",
    "pack_bits",
    "popcount",
    "to_signs",
    "unpack_bits",
    "validate_packed",
]
