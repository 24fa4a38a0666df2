"""The hasher: twin towers trained into one Hamming space, and everything that fits them.

``config`` (TrainConfig, torch-free) -> ``towers`` / ``losses`` / ``sampling`` -> ``trainer``
(the loop) -> ``refine`` (user codes toward the teacher) and ``new_items`` (codes for unseen
items) -> ``twin_tower`` (:class:`TwinTowerHasher`: fit, encode, the learned re-ranker's
training) -> ``persistence`` (its model directory). Import from the modules (or ``rechash``).
"""
