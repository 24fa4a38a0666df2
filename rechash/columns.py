"""Column names shared by every table rechash reads or writes (one place, no literals)."""

from __future__ import annotations

USER_ID = "user_id"
ITEM_ID = "item_id"
WEIGHT = "weight"
TIMESTAMP = "timestamp"
HAMMING = "hamming"
SCORE = "score"
RANK = "rank"
MODEL = "model"

#: The candidate / recommendation table every arm (rechash and baselines) emits.
CANDIDATE_COLUMNS = (USER_ID, ITEM_ID, RANK, SCORE, HAMMING)
