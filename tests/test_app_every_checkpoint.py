"""Every page that takes a checkpoint renders for every shipped checkpoint a user can pick there.

Each case selects its checkpoints explicitly (as the pickers' own labels; pages that take several get up to
four per case) and looks at a digits image. Skipped when the shipped checkpoints are absent.
"""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from vitviz.overview import checkpoint_table

from app_fixtures import APP

PAGE_TIMEOUT = 300  # Q/K/V codes & weights analyses four real XCiT checkpoints: minutes on a busy 2-core CPU

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
TABLE, _ = checkpoint_table(SHIPPED, recursive=False)
ROWS = {r["checkpoint"]: r for r in TABLE.to_dict("records")}


def label(stem: str) -> str:
    from vitviz.ui.widgets import _label
    return _label(ROWS[stem])


def is_xcit(stem: str) -> bool:
    return "xcit" in ROWS[stem]["variant"]


def groups(size: int, offered=lambda stem: True) -> list[tuple[str, ...]]:
    """The checkpoints a page offers, `size` per case (a multi-checkpoint picker takes several at once)."""
    stems = [s for s in sorted(ROWS) if offered(s)]
    return [tuple(stems[i:i + size]) for i in range(0, len(stems), size)]


# page -> (checkpoints per case, session state that selects them and a small image)
PAGES = {
    "attention": (groups(1), lambda g: {"checkpoint": label(g[0]), "attn_image_source": "Digits"}),
    "cross_covariance": (groups(1, is_xcit), lambda g: {"xcc_checkpoint": label(g[0]), "xcc_image_source": "Digits"}),
    # one case per tab of the page (only the open tab runs)
    "codes_weights": (groups(4, is_xcit), lambda g: {"cw_checkpoints": [label(s) for s in g],
                                                     "cw_tab": "Pathway similarity (CKA)"}),
    "codes_weights#weights": (groups(4, is_xcit), lambda g: {"cw_checkpoints": [label(s) for s in g],
                                                             "cw_tab": "Q/K/V weights"}),
    "codes_weights#codes": (groups(4, is_xcit), lambda g: {"cw_checkpoints": [label(s) for s in g],
                                                           "cw_tab": "F-SNE codes",
                                                           "cw_fsne": label(next(s for s in g if s.endswith("fsne")))}),
    "per_class": (groups(2), lambda g: {"pc_a": label(g[0]), "pc_b": label(g[-1])}),
    "compare": (groups(4), lambda g: {"cmp_checkpoints": [label(s) for s in g], "cmp_image_source": "Digits"}),
    "attributions": (groups(4), lambda g: {"attr_checkpoints": [label(s) for s in g], "attr_image_source": "Digits",
                                           "attr_steps": 4}),
    "finetune": (groups(1), lambda g: {"ft_checkpoint": label(g[0])}),
}
PICKERS = {"checkpoint", "xcc_checkpoint", "cw_checkpoints", "cw_fsne", "pc_a", "pc_b", "cmp_checkpoints",
           "attr_checkpoints", "ft_checkpoint"}
CASES = [(page, group) for page, (cases, _) in PAGES.items() for group in cases]


@pytest.fixture
def shipped_env(monkeypatch, tmp_path):
    if len(ROWS) < 4:
        pytest.skip("the shipped checkpoints are not present")
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(SHIPPED))
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize("page,group", CASES, ids=[f"{p}-{'+'.join(g)}" for p, g in CASES])
def test_page_renders_for_shipped_checkpoints(shipped_env, page, group):
    state = PAGES[page][1](group)
    at = AppTest.from_file(str(APP), default_timeout=PAGE_TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"pages/{page.split('#')[0]}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shown = {w.key: w.value for w in list(at.selectbox) + list(at.multiselect) if w.key in state}
    assert shown == {k: v for k, v in state.items() if k in PICKERS}  # nothing else was substituted
    if "cw_tab" in state:  # the tab asked for is the one that ran
        expected = {"Pathway similarity (CKA)": "How alike are q, k and v", "Q/K/V weights": "Q/K/V weights",
                    "F-SNE codes": "F-SNE codes"}[state["cw_tab"]]
        assert [h.value for h in at.header][0].startswith(expected)
