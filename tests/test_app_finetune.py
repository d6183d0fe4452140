"""AppTest of the Fine-tune page: start a job from the form, see it run to done, compare with the parent."""
import time

from vitviz.train.jobs import JobStore

from app_fixtures import run_page


def test_finetune_page_starts_a_job_that_finishes(app_env, tmp_path, monkeypatch):
    import shutil
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    at = run_page("finetune")
    box = at.selectbox(key="ft_checkpoint")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("tiny_vit_softmax"))).run()
    datasets = at.selectbox(key="ft_dataset")
    datasets.select_index(next(i for i, o in enumerate(datasets.options) if o.startswith("Handwritten digits"))).run()
    at.radio(key="ft_preset").set_value("Custom").run()
    at.radio(key="ft_budget").set_value("steps")
    at.number_input(key="ft_amount").set_value(4)
    at.number_input(key="ft_batch").set_value(32)
    submit = [b for b in at.button if b.label.startswith("Start fine-tune")][0]
    submit.click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = JobStore(directory / "runs")
    jobs = store.list()
    assert len(jobs) == 1 and jobs[0].spec["steps"] == 4 and jobs[0].spec["dataset"] == "digits"
    deadline = time.time() + 120
    while store.get(jobs[0].id).state in ("queued", "running") and time.time() < deadline:
        store.poll()
        time.sleep(0.5)
    assert store.get(jobs[0].id).state == "done"
    at.run()
    assert any(jobs[0].id in m.value for m in at.markdown)
    compare = [b for b in at.button if b.label.startswith("Compare with its parent")]
    assert compare
    compare[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    child = store.get(jobs[0].id).checkpoint.rsplit("/", 1)[-1].removesuffix(".safetensors")
    assert at.query_params["checkpoint"] in (child, [child])
    assert at.selectbox(key="pc_a").value.startswith("tiny_vit_softmax")
    assert at.selectbox(key="pc_b").value.startswith(child)


def test_finetune_page_offers_download_for_missing_datasets(app_env):
    at = run_page("finetune")
    datasets = at.selectbox(key="ft_dataset")
    missing = [o for o in datasets.options if "not downloaded" in o]
    assert missing and any("CIFAR-10" in o for o in missing)
    datasets.select_index(datasets.options.index(missing[0])).run()
    assert any(b.label.startswith("Download") and "MB" in b.label for b in at.button)


def test_finetune_page_says_how_to_place_stanford_cars(app_env):
    """Stanford Cars has no download (its source is gone): the page explains the layout instead of a button."""
    at = run_page("finetune")
    datasets = at.selectbox(key="ft_dataset")
    assert any(o.startswith("Oxford-IIIT Pet") for o in datasets.options)
    assert any(o.startswith("Oxford Flowers-102") for o in datasets.options)
    cars = next(i for i, o in enumerate(datasets.options) if o.startswith("Stanford Cars"))
    datasets.select_index(cars).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no longer online" in i.value and "cars_train" in i.value for i in at.info)
    assert not any(b.label.startswith("Download") for b in at.button)


def test_quick_preset_is_sized_from_the_measured_speed_and_says_so(app_env, tmp_path, monkeypatch):
    import shutil

    from vitviz.train import plan
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    monkeypatch.setattr(plan, "QUICK_BUDGET_SECONDS", 12.0)  # a test-sized budget; the page's sizing is the same
    at = run_page("finetune")
    box = at.selectbox(key="ft_checkpoint")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("tiny_vit_softmax"))).run()
    datasets = at.selectbox(key="ft_dataset")
    datasets.select_index(next(i for i, o in enumerate(datasets.options) if o.startswith("Handwritten digits"))).run()
    assert at.radio(key="ft_preset").value.startswith("Quick")
    assert not at.exception, [e.value for e in at.exception]
    line = next(m.value for m in at.markdown if "expected" in m.value)
    assert "the Q/K/V embeddings and the head only" in line and "measured" in line
    cache = directory / "runs" / "train_speed.speeds"
    assert cache.exists()  # measured once on this device, kept for the next visit
    at.radio(key="ft_preset").set_value("Full (every weight, 3 epochs)").run()
    assert "every weight, 3 epochs" in next(m.value for m in at.markdown if "expected" in m.value)
    at.radio(key="ft_preset").set_value("Quick (about a minute on a CPU)").run()
    [b for b in at.button if b.label.startswith("Start fine-tune")][0].click().run()
    store = JobStore(directory / "runs")
    job = store.list()[0]
    assert job.spec["trainable"] == "qkv" and job.spec["epochs"] is None and job.spec["steps"] >= 5
    assert job.spec["extra"]["preset"] == "quick" and job.spec["extra"]["expected_seconds"] > 0
    deadline = time.time() + 180
    while store.get(job.id).state in ("queued", "running") and time.time() < deadline:
        store.poll()
        time.sleep(0.5)
    done = store.get(job.id)
    assert done.state == "done", done.message
    assert "test accuracy" in done.message and "parent" in done.message
