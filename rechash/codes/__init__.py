"""Binary codes: ``bits`` (the one bit order: pack, unpack, popcount distances),
``binarizers`` (post-hoc ITQ and random-rotation LSH from float embeddings) and
``diagnostics`` (bit balance, correlation, duplicate codes)."""
