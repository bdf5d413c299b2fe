"""Talking Heads (Merullo et al. 2024): communication channels between heads read from the weights
(``composition``: composition scores, OV/QK spectra, the SVD channels between a sender and a
receiver), checked on data (``inhibition``: the inhibition score, the edit search on list recall)
and the positional subspace of inhibition (``positional``: centroids, traversal, replacement).
Definitions: docs/composition.md."""
