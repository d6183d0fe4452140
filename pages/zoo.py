"""Zoo: every checkpoint found (variant, family, paper, params, dataset, accuracy) and the variant catalog."""
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz.overview import variant_table
from vitviz.ui import checkpoint_dir, checkpoints_table, show_table

ensure_app_navigation()
st.title("Model zoo")
directory = checkpoint_dir()
table, problems = checkpoints_table()
st.subheader(f"Checkpoints in `{directory}`")
if table.empty:
    st.info(f"No checkpoints in {directory}. Train some with `python -m vitviz train-zoo`.")
else:
    show_table(table.drop(columns=["path"]), "checkpoints", key="zoo_checkpoints",
               column_config={"test_accuracy": st.column_config.NumberColumn(format="%.3f"),
                              "learning_curve": st.column_config.LineChartColumn(
                                  "learning curve", y_min=0.0, y_max=1.0,
                                  help="test accuracy after each epoch (runs that evaluated every epoch)"),
                              "train_seconds": st.column_config.NumberColumn(format="%.0f")})
if problems:
    st.subheader(f"Unreadable checkpoint files ({len(problems)})")
    st.caption("No page offers these until they are fixed or removed.")
    for problem in problems:
        st.warning(problem)

st.subheader("Variant catalog")
catalog = variant_table()
family = st.pills("Family", sorted(catalog["family"].unique()), selection_mode="multi", key="zoo_family",
                 help="Show only the chosen families (none chosen: every variant).")
shown = catalog[catalog["family"].isin(family)] if family else catalog
show_table(shown, "variants", key="zoo_variants")
