"""Sparse autoencoders: loading (SAELens layout), features on prompts and corpora, edits, training."""
