"""Explanations and their scores: which input a prediction depends on, and which explanation to trust.

- `rollout`: attention rollout (Abnar & Zuidema 2020) and its head fusions.
- `relevance`: gradient-weighted attention relevance (Chefer, Gur & Wolf 2021), per family.
- `attributions`: captum input attributions (saliency, integrated gradients, ...).
- `faithfulness`: perturbation and RISE deletion/insertion tests of every method, with verdicts.
- `sweeps`: every setting of a cheap explanation at once, for figures that switch in the browser.

Submodules are imported on use (captum is slow to import); explanations take models and images, and read
what a layer computes through `vitviz.inspect.capture`.
"""
