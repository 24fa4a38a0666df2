"""Ordering: ``order`` (the one rule every list follows: keys, then item id ascending, -1 /
-inf padding) and ``topk`` (full-catalog top-k under that rule: the evaluation oracle)."""
