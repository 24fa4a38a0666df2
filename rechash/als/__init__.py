"""implicit's ALS/BPR: ``fit`` (fit, grid-search and tune on validation, into
:class:`~rechash.data.embeddings.FloatEmbeddings`) and ``teacher`` (the hasher's default teacher)."""
