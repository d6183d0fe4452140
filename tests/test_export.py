"""Static figure export (kaleido + Chromium) and self-contained HTML reports."""
import re

import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from vitviz.figures import export
from vitviz.figures.report import ReportItem, html_report


def _figure():
    fig = go.Figure(go.Heatmap(z=[[0.1, 0.9], [0.4, 0.6]], x=["b0", "b1"], y=["b0", "b1"]))
    fig.update_layout(title="layer CKA 8417", width=400, height=300)
    return fig


chromium = pytest.mark.skipif(not export.static_export_status()[0],
                              reason="static export needs kaleido and Chrome/Chromium")


@chromium
def test_static_export_yields_valid_svg_and_pdf():
    svg = export.to_static(_figure(), "svg")
    assert svg.lstrip().startswith(b"<svg") and svg.rstrip().endswith(b"</svg>")
    assert b"layer CKA 8417" in svg
    pdf = export.to_static(_figure(), "pdf")
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:]


def test_unavailable_without_browser_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv("VITVIZ_CHROMIUM", raising=False)
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser anywhere on the PATH
    available, reason = export.static_export_status()
    if export._kaleido_problem():
        assert not available and "kaleido" in reason
    else:
        assert not available and "Chromium" in reason and "apt-get install chromium" in reason
    with pytest.raises(export.StaticExportUnavailable, match="unavailable"):
        export.to_static(_figure(), "svg")


def test_browser_override_must_be_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("VITVIZ_CHROMIUM", str(tmp_path / "no-such-chrome"))
    available, reason = export.static_export_status()
    assert not available and "VITVIZ_CHROMIUM" in reason


def test_unknown_format_rejected():
    with pytest.raises(ValueError):
        export.to_static(_figure(), "eps")


def test_html_report_is_self_contained_with_data_and_metadata():
    table = pd.DataFrame({"class": ["cat", "dog"], "accuracy_a": [0.61, 0.72]})
    meta = {"ckpt_a": {"variant": "vitviz_xcit_n12_p4_32_linear", "dataset": "cifar10", "img_size": 32}}
    out = html_report("Per-class <A> vs B", [ReportItem("figure", _figure(), "CKA"), ReportItem("table", table, "t"),
                                             ReportItem("figure", _figure(), "again")],
                      metadata=meta, settings={"pc_level": 0.95, "pc_a": "ckpt_a"})
    assert out.startswith("<!DOCTYPE html>") and "Per-class &lt;A&gt; vs B" in out
    # plotly.js inlined exactly once, no external scripts, stylesheets or fonts
    assert len(re.findall(r"<script[^>]*\bsrc=", out)) == 0
    assert not re.search(r"<link[^>]+href=[\"']https?://", out)
    assert out.count(get_plotlyjs()[:300]) == 1
    assert out.count("Plotly.newPlot") == 2
    # the figures' data, the table, the metadata and the settings are in the file
    assert "layer CKA 8417" in out and '"b0"' in out
    assert "<td>dog</td>" in out and "0.72" in out
    assert "vitviz_xcit_n12_p4_32_linear" in out and "pc_level" in out and "0.95" in out


def test_html_report_without_figures_has_no_plotlyjs():
    out = html_report("t", [ReportItem("text", "only words")])
    assert "only words" in out and "Plotly" not in out
