"""Comparisons across models: how two networks, or the q, k and v pathways of one, differ.

- `representations`: layer x layer linear CKA between two models' block outputs (minibatch unbiased HSIC).
- `pathways`: linear CKA between what q, k and v compute, and their drift after a fine-tune.
- `weights`: Q/K/V weight statistics (shared fraction, norms, spectra, effective rank, histograms).
- `side_by_side`: those statistics of several checkpoints as long tables, and weight drift from a parent.
"""
