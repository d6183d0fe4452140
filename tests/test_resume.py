"""Resume states: a stopped run continues bit-for-bit; a foreign, finished or corrupt state is refused with
the file's name and nothing is written."""
import json
import threading

import numpy as np
import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz.cli import main as cli_main
from vitviz.data import ImageDataset
from vitviz.train import TrainConfig, train
from vitviz.train.engine import TrainingCancelled
from vitviz.train.resume import ResumeError, StateWriter, read_state

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# XCiT: BatchNorm buffers (patch embedding, LPI) and drop path (torch's global RNG) must come back too
TINY_XCIT = dict(depth=2, embed_dim=32, num_heads=2, drop_path_rate=0.2)
IDENTITY = {"variant": "vitviz_xcit_n12_p4_32_linear", "variant_kwargs": TINY_XCIT, "dataset": "random"}


def random_set(n=64, seed=0, classes=4):
    rng = np.random.default_rng(seed)
    return ImageDataset("random", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                        rng.integers(0, classes, n), [str(i) for i in range(classes)], "train")


def model():
    torch.manual_seed(7)
    return timm.create_model("vitviz_xcit_n12_p4_32_linear", num_classes=4, **TINY_XCIT)


def config(**kw):
    return TrainConfig(**{**dict(epochs=4, batch_size=16, warmup_epochs=1, eval_every=1, seed=3), **kw})


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def run(m, cfg, *, stop_at=None, state=None, resume=None, data=None):
    """Train; with stop_at, the cancel flag is set once that many steps are done (the state is written every step)."""
    steps = []
    cancel = threading.Event()

    def on_step(event, s):
        if event == "step":
            steps.append(s["step"])
            if stop_at is not None and s["step"] >= stop_at:
                cancel.set()

    writer = StateWriter(state, every_seconds=0) if state else None
    data = data if data is not None else random_set()
    return train(m, data, cfg, mean=MEAN, std=STD, img_size=32, test_set=random_set(32, seed=1),
                 callbacks=[on_step], cancel=cancel, state_writer=writer, resume=resume, identity=IDENTITY), steps


@pytest.fixture(scope="module")
def uninterrupted():
    m = model()
    result, _ = run(m, config())
    return weights(m), result


@pytest.mark.parametrize("stop_at", [6, 8], ids=["inside-an-epoch", "at-an-epoch-end"])
def test_two_plus_two_epochs_with_a_resume_equal_four(uninterrupted, tmp_path, stop_at):
    reference, full = uninterrupted
    state = tmp_path / "run.resume.safetensors"
    with pytest.raises(TrainingCancelled):
        run(model(), config(), stop_at=stop_at, state=state)
    saved = read_state(state)
    assert saved.step == stop_at and (saved.order is None) == (stop_at % 4 == 0)
    other = model()
    with torch.no_grad():  # the resumed run must take everything from the state, not from the fresh model
        for p in other.parameters():
            p.add_(1.0)
    result, steps = run(other, config(), resume=saved, state=state)
    assert steps[0] == stop_at + 1 and steps[-1] == 16
    resumed = weights(other)
    assert resumed.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=0, msg=key)
    assert [round(h["train_loss"], 6) for h in result.history] == [round(h["train_loss"], 6) for h in full.history]
    assert [h["test_accuracy"] for h in result.history] == [h["test_accuracy"] for h in full.history]
    assert result.resumes == [{"step": stop_at, "state": str(state)}]
    assert read_state(state).step == 16  # the final state: a later, longer run can continue from it


def test_a_finished_run_trains_longer_only_when_asked(uninterrupted, tmp_path):
    state = tmp_path / "run.resume.safetensors"
    run(model(), config(epochs=2), state=state)
    with pytest.raises(ResumeError, match="already took 8 of the 8 steps"):
        run(model(), config(epochs=2), resume=read_state(state))
    result, steps = run(model(), config(epochs=3), resume=read_state(state), state=state)
    assert steps == [9, 10, 11, 12] and len(result.history) == 3


@pytest.mark.parametrize("change, words", [
    ({"lr": 2e-3}, "recipe lr"), ({"seed": 4}, "recipe seed"), ({"trainable": "head"}, "recipe trainable"),
    ({"data": random_set(seed=9)}, "train_images_sha256"), ({"identity": {"variant": "other"}}, "variant"),
])
def test_a_foreign_state_is_refused_by_name_and_nothing_is_written(tmp_path, change, words):
    state = tmp_path / "run.resume.safetensors"
    with pytest.raises(TrainingCancelled):
        run(model(), config(), stop_at=5, state=state)
    before = state.read_bytes()
    saved = read_state(state)
    if "identity" in change:
        saved.identity = {**saved.identity, **change["identity"]}
        cfg, data = config(), None
    else:
        cfg = config(**{k: v for k, v in change.items() if k != "data"})
        data = change.get("data")
    m = model()
    initial = weights(m)
    with pytest.raises(ResumeError, match=words) as info:
        run(m, cfg, resume=saved, state=state, data=data)
    assert str(state) in str(info.value) and "nothing was written" in str(info.value)
    assert state.read_bytes() == before
    assert all(torch.equal(initial[k], v) for k, v in weights(m).items())  # the model was not touched either


def test_unreadable_states_are_refused_by_name(tmp_path):
    truncated = tmp_path / "truncated.resume.safetensors"
    with pytest.raises(TrainingCancelled):
        run(model(), config(), stop_at=2, state=truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    garbage = tmp_path / "garbage.resume.safetensors"
    garbage.write_bytes(b"not a state at all")
    for path in (truncated, garbage, tmp_path / "missing.resume.safetensors"):
        with pytest.raises(ResumeError, match=str(path.name)):
            read_state(path)


def test_a_checkpoint_is_not_a_resume_state():
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "vit_softmax_32.safetensors"
    with pytest.raises(ResumeError, match="not a vitviz resume state"):
        read_state(shipped)


def test_cli_train_resumes_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(tmp_path))
    base = ["train", "--variant", "vitviz_vit_softmax_32", "--variant-kwargs",
            json.dumps(dict(depth=1, embed_dim=16, num_heads=2, patch_size=8)), "--dataset", "digits",
            "--batch-size", "64", "--warmup-epochs", "0", "--quiet", "--out", str(tmp_path / "digits_vit")]
    assert cli_main(base + ["--steps", "3"]) == 0
    state = tmp_path / "digits_vit.resume.safetensors"  # beside the checkpoint
    assert read_state(state).step == 3
    assert cli_main(base + ["--steps", "5", "--resume", str(state)]) == 0
    meta = json.loads((tmp_path / "digits_vit.json").read_text())
    assert meta["train_config"]["steps_done"] == 5
    assert meta["train_config"]["resumed"][0]["step"] == 3
    assert "--resume" in meta["train_config"]["command"]
    # another variant's command with this state: one clear error, nothing overwritten
    before = (tmp_path / "digits_vit.safetensors").read_bytes()
    other = [a if a != "vitviz_vit_softmax_32" else "vitviz_vit_performer_32" for a in base]
    assert cli_main(other + ["--steps", "8", "--resume", str(state)]) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "variant" in err and str(state) in err
    assert (tmp_path / "digits_vit.safetensors").read_bytes() == before
