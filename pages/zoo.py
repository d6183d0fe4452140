"""Zoo: every checkpoint found (variant, family, paper, params, dataset, accuracy) and the variant catalog."""
import streamlit as st

from vitviz.overview import checkpoint_table, variant_table
from vitviz.ui import checkpoint_dir

st.title("Model zoo")
directory = checkpoint_dir()
table, problems = checkpoint_table(directory)
st.subheader(f"Checkpoints in `{directory}`")
if table.empty:
    st.info(f"No checkpoints in {directory}. Train some with `python -m vitviz train-zoo`.")
else:
    st.dataframe(table.drop(columns=["path"]), hide_index=True,
                 column_config={"test_accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "train_seconds": st.column_config.NumberColumn(format="%.0f")})
    st.download_button("Download table (CSV)", table.to_csv(index=False), "checkpoints.csv", "text/csv")
for problem in problems:
    st.warning(problem)

st.subheader("Variant catalog")
catalog = variant_table()
family = st.multiselect("Family", sorted(catalog["family"].unique()))
shown = catalog[catalog["family"].isin(family)] if family else catalog
st.dataframe(shown, hide_index=True)
st.download_button("Download catalog (CSV)", shown.to_csv(index=False), "variants.csv", "text/csv")
