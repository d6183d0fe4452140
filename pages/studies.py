"""Studies: a paper's claim checked here over seeds. Start, follow and cancel a study's runs (the job queue), and
read its verdict: per-arm accuracy with intervals, the paired difference, per-class differences, a report."""
import pandas as pd
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz.figures.studies import study_figure
from vitviz.locations import default_studies_dir
from vitviz.studies import runner
from vitviz.studies.report import arms_table, per_class_table, study_report_html
from vitviz.studies.study import list_studies, study_result
from vitviz.ui import show_table
from vitviz.ui.jobs_view import job_store

ensure_app_navigation()
st.title("Studies")
st.caption("A study trains every arm of a claim with the same recipe, seeds and data order, and decides the claim "
           "on the paired differences over seeds: **holds**, **contradicted** or **inconclusive at this budget** "
           "(with the seeds an inconclusive difference would need).")
directory = default_studies_dir()
found = list_studies(directory)
if not found:
    st.info(f"No study specs in `{directory}` (each study is a folder with a spec.json).")
    st.stop()
store = job_store()
for path, _, problem in found:
    if problem:
        st.warning(f"`{path}` cannot be read: {problem}")
specs = {spec.name: spec for _, spec, _ in found if spec is not None}
overview, results = [], {name: study_result(spec) for name, spec in specs.items()}
for spec in specs.values():
    status = runner.study_status(spec, store)
    verdict = results[spec.name].get("verdict", {}).get("verdict", "—")
    overview.append({"study": spec.name, "claim": spec.claim, "runs done": f"{status.done}/{status.total}",
                     "verdict": verdict})
show_table(pd.DataFrame(overview), "studies", key="studies_overview")
name = st.selectbox("Study", list(specs), key="study")
spec = specs[name]
st.subheader(spec.claim)
st.markdown(f"**Budget:** {spec.note or 'not stated'}. Recipe: "
            + ", ".join(f"{k} {v}" for k, v in spec.recipe.items())
            + f"; dataset {spec.dataset}; seeds {', '.join(map(str, spec.seeds))}.")
st.markdown("**Arms:** " + "; ".join(
    f"`{arm}` = {a['variant']}" + (f" ({', '.join(f'{k}={v}' for k, v in a['variant_kwargs'].items())})"
                                   if a.get("variant_kwargs") else "") for arm, a in spec.arms.items()))


@st.fragment(run_every=3.0 if runner.study_status(spec, store).active else None)  # follows running studies
def progress_panel():
    status = runner.study_status(spec, store)
    st.progress(status.done / status.total, text=status.line())
    left, right = st.columns(2)
    if status.done < status.total and not status.active:
        if left.button("Start the missing runs", key="study_start", type="primary",
                       help="queues one training job per missing run in the app's job queue (also shown on the "
                            "Fine-tune page); a stopped run continues from its resume state"):
            try:
                queued = runner.submit_study(spec, store)
                st.toast(f"{len(queued)} runs queued")
            except ValueError as exc:
                st.error(str(exc))
    if status.active and right.button("Cancel the study's runs", key="study_cancel"):
        st.toast(f"{runner.cancel_study(spec, store)} runs cancelled")
    for arm, seed, message, log in status.failed:
        with st.expander(f"run {arm}, seed {seed}: {message}"):
            try:
                st.code("".join(open(log, errors="replace").readlines()[-30:]) or "(empty log)")
            except OSError:
                st.caption(f"no log at {log}")


progress_panel()
result = results[name]
if not result["arms"]:
    st.info("No run of this study has finished yet. Start it here, or from a shell: "
            f"`python -m vitviz study run {spec.path}` (on a SLURM cluster: `--executor slurm`).")
    st.stop()
st.markdown(result.get("verdict_sentence", "No verdict yet: fewer than two seeds were run in both arms."))
st.plotly_chart(study_figure(result), key="study_figure")
show_table(arms_table(result), f"study_{spec.name}_arms", key="study_arms")
per_class = per_class_table(result)
if not per_class.empty:
    st.markdown("**Per class, pooled over seeds** (candidate − baseline; exact McNemar test per class, Holm "
                "correction over the classes)")
    show_table(per_class, f"study_{spec.name}_per_class", key="study_per_class")
st.download_button("Download the report (HTML, opens offline)", study_report_html(result, spec.as_dict()),
                   file_name=f"study_{spec.name}.html", mime="text/html", key="study_report")
st.caption(f"The same from a shell: `python -m vitviz study show {spec.path} --json`.")
