"""A study's result as tables, and as one offline HTML report (the figure, the verdict, the tables, the spec)."""
from __future__ import annotations

import pandas as pd


def arms_table(result: dict) -> pd.DataFrame:
    """One row per arm: seeds, accuracy per seed, mean and its interval (percent)."""
    rows = []
    for arm, a in (result.get("arms") or {}).items():
        rows.append({"arm": arm, "seeds": ", ".join(map(str, a["seeds"])),
                     "accuracy per seed (%)": ", ".join(f"{100 * v:.1f}" for v in a["accuracies"]),
                     "mean (%)": 100 * a["mean"], "95% t interval (%)": _interval(a["ci_low"], a["ci_high"])})
    return pd.DataFrame(rows, columns=["arm", "seeds", "accuracy per seed (%)", "mean (%)", "95% t interval (%)"])


def _interval(low: float, high: float) -> str:
    return "—" if low != low or high != high else f"[{100 * low:.1f}, {100 * high:.1f}]"


def per_class_table(result: dict) -> pd.DataFrame:
    """Per-class differences pooled over seeds (candidate − baseline), with Holm-adjusted McNemar p-values."""
    rows = result.get("per_class") or []
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    keep = {"class": "class", "n": "test samples (all seeds)", "accuracy_a": "baseline accuracy",
            "accuracy_b": "candidate accuracy", "difference": "difference", "diff_ci_low": "difference low",
            "diff_ci_high": "difference high", "b_only_a_right": "only baseline right",
            "c_only_b_right": "only candidate right", "mcnemar_p": "McNemar p", "holm_p": "Holm-adjusted p",
            "significant": "significant after Holm"}
    return df[[c for c in keep if c in df]].rename(columns=keep)


def study_report_html(result: dict, spec: dict) -> str:
    """The study as one self-contained HTML file (opens offline)."""
    from ..figures.report import ReportItem, html_report
    from ..figures.studies import study_figure
    items = [ReportItem("text", result.get("verdict_sentence", "No verdict yet: fewer than two seeds were run "
                                           "in both arms.").replace("**", ""), name="Verdict")]
    if result.get("arms"):
        items.append(ReportItem("figure", study_figure(result), name="Accuracy per arm and paired differences",
                                caption="Dots: one seed each. Diamonds: the mean, with its 95% t interval."))
        items.append(ReportItem("table", arms_table(result), name="Arms"))
    per_class = per_class_table(result)
    if not per_class.empty:
        items.append(ReportItem("table", per_class, name="Per class, pooled over seeds",
                                caption="Exact McNemar test per class on every paired seed's test predictions; "
                                        "Holm correction over the classes."))
    if result.get("missing_runs"):
        items.append(ReportItem("text", "Runs not finished: " + ", ".join(result["missing_runs"]),
                                name="Missing runs"))
    return html_report(f"Study {result.get('study', spec.get('name', ''))}: {result.get('claim', '')}", items,
                       settings={"spec": spec, "budget": spec.get("note", "")})
