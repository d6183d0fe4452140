"""Studies: a paper's claim checked here over seeds (arms x seeds -> runs -> verdict). They sit above `train/` and
the job queue, never inside the app.

- `verdict`: per-arm accuracy with t intervals, the paired difference over seeds, "holds" / "contradicted" /
  "inconclusive at this budget" with the seeds an inconclusive difference would need, per-class differences
  pooled over seeds with Holm correction.
"""
