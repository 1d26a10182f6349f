"""Would more data help: the power-law fit, the verdict at several feature qualities (checked
against fresh draws of the same generator), tiny sets, the CLI, the search and the app's chart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_process import run_cli
from tests.imagegen import make_image_folder
from training.babysit.learning_curve import (
    gain_text,
    head_accuracy,
    learning_curve,
    more_data_finding,
    stratified_rows,
)
from training.babysit.power_law import bootstrap_gains, fit_power_law
from training.store import RunStore


class Generator:
    """Gaussian classes around random means: ``separation`` sets how well features separate
    them, ``dims`` how many images a linear head needs. Fresh draws give the truth."""

    def __init__(self, classes: int, dims: int, separation: float, seed: int):
        self.rng = np.random.default_rng(seed)
        self.means = self.rng.normal(0, separation, (classes, dims))

    def draw(self, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(len(self.means)), per_class)
        noise = self.rng.normal(size=(len(labels), self.means.shape[1]))
        return (self.means[labels] + noise).astype(np.float32), labels


def scenario(classes, dims, separation, per_class, val_per_class, seed=0):
    """(generator, curve, validation set): the curve of one training set of ``per_class``."""
    gen = Generator(classes, dims, separation, seed)
    val = gen.draw(val_per_class)
    curve = learning_curve(*gen.draw(per_class), *val, seed=seed)
    return gen, curve, val


def true_gain(gen: Generator, val, per_class: int, multiple: int, draws: int = 4) -> float:
    """Mean accuracy of fresh training sets ``multiple``× as large minus that of fresh sets
    of today's size, on the same validation set."""

    def mean_at(n: int) -> float:
        return float(np.mean([head_accuracy(*gen.draw(n), *val) for _ in range(draws)]))

    return mean_at(multiple * per_class) - mean_at(per_class)


# -- the fit --------------------------------------------------------------------------------------


def law(n):
    return 0.9 - 2.0 * np.asarray(n, dtype=np.float64) ** -0.5


def test_the_power_law_fit_recovers_known_parameters_from_exact_points():
    sizes = [50, 50, 50, 125, 125, 125, 250, 250, 250, 500]
    fitted = fit_power_law(sizes, law(sizes), 500, float(law(500)))
    assert fitted is not None
    fit = fitted.to_dict()
    assert fit["a"] == pytest.approx(0.9, abs=0.005)
    assert fit["c"] == pytest.approx(0.5, rel=0.06)  # the exponent grid's spacing
    assert fit["b"] == pytest.approx(2.0, rel=0.2)
    assert float(fitted(1000)) == pytest.approx(float(law(1000)), abs=0.002)
    assert float(fitted(2000)) == pytest.approx(float(law(2000)), abs=0.004)
    assert fitted.rmse < 0.002


def test_with_noisy_points_the_projection_and_its_band_hold_the_truth():
    rng = np.random.default_rng(0)
    sizes = [50, 50, 50, 125, 125, 125, 250, 250, 250]
    noisy = law(sizes) + rng.normal(0, 0.004, len(sizes))
    fitted = fit_power_law([*sizes, 500], [*noisy, float(law(500))], 500, float(law(500)))
    assert float(fitted(1000)) == pytest.approx(float(law(1000)), abs=0.01)
    expected, one_draw = bootstrap_gains(
        [*sizes, 500], [*noisy, float(law(500))], 500, float(law(500)), [2, 4], seed=0
    )
    low, high = np.percentile(expected, [5, 95], axis=0)
    truth = law([1000, 2000]) - law(500)
    assert np.all(low <= truth) and np.all(truth <= high)
    assert np.all(np.percentile(one_draw, 95, axis=0) >= high - 1e-9)  # one draw: no narrower


def test_a_curve_needs_two_sizes_besides_the_whole_set():
    assert fit_power_law([10, 10, 100], [0.5, 0.6, 0.8], 100, 0.8) is None


# -- the verdict ----------------------------------------------------------------------------------


def test_where_more_data_truly_helps_the_finding_says_rising_with_its_numbers():
    gen, curve, val = scenario(4, 256, 0.15, per_class=60, val_per_class=150)
    assert true_gain(gen, val, 60, 2) > 0.03  # the generator's truth: doubling helps
    finding = more_data_finding(curve)
    assert curve["verdict"] == "rising", finding.measured
    doubled, quadrupled = curve["projections"]
    assert (doubled["multiple"], doubled["images"]) == (2, 480)
    assert doubled["gain_low"] >= 0.005 and doubled["gain"] >= 0.02
    assert quadrupled["gain"] > doubled["gain"]
    assert doubled["low"] <= doubled["accuracy"] <= doubled["high"]
    assert finding.status == "ok" and finding.measured.startswith("rising: ")
    assert "doubling the training images should add about" in finding.advice
    assert gain_text(doubled) in finding.advice  # "about 4 points (2–6)"


def test_where_the_curve_is_flat_the_finding_says_more_of_the_same_will_not_help():
    gen, curve, val = scenario(3, 8, 0.9, per_class=400, val_per_class=200, seed=1)
    assert abs(true_gain(gen, val, 400, 4)) < 0.015  # the generator's truth: it has levelled
    finding = more_data_finding(curve, {"weights": "imagenet"})
    assert curve["verdict"] == "flat", finding.measured
    assert curve["accuracy"] < 0.9
    assert "More of the same images will not help" in finding.advice
    assert "--backbone" in finding.advice and "--unfreeze" in finding.advice
    assert "label" in finding.advice
    assert finding.measured.startswith("flat: ") and "under 1 point" in finding.measured


def test_features_at_chance_say_the_curve_cannot_be_read_not_flat():
    _, curve, _ = scenario(3, 64, 0.0, per_class=60, val_per_class=100, seed=0)
    finding = more_data_finding(curve, {"weights": "none"})
    assert (curve["verdict"], curve["cause"]) == ("unreadable", "chance")
    assert curve["projections"] == [] and curve["fit"] is None
    assert finding.measured.startswith("cannot read the curve: the head is at chance")
    assert "will not help" not in finding.advice and "flat" not in finding.advice
    assert "--weights PATH" in finding.advice  # random weights: stronger features first


@pytest.mark.parametrize("separation", [0.0, 0.06, 0.12, 0.25, 0.5, 1.5])
def test_at_every_feature_quality_the_verdict_is_right_or_silent(separation):
    gen, curve, val = scenario(3, 64, separation, per_class=50, val_per_class=150, seed=2)
    truth = true_gain(gen, val, 50, 2, draws=6)
    verdict = curve["verdict"]
    if verdict == "rising":
        assert truth > 0.005, (curve["projections"], truth)
    if verdict == "flat":
        assert truth < 0.02, (curve["projections"], truth)
    if separation == 0.0:
        assert verdict in ("unreadable", "unclear")
    if separation == 1.5:  # every class apart: nothing left to gain, and it says so
        assert verdict == "flat" and curve["accuracy"] > 0.97
        assert more_data_finding(curve).advice.startswith("Nothing to do")


def test_a_fraction_with_less_than_one_image_per_class_is_left_out():
    gen = Generator(3, 16, 2.0, seed=0)
    curve = learning_curve(*gen.draw(5), *gen.draw(10))
    assert [s["fraction"] for s in curve["skipped"]] == [0.1]
    assert "less than one image" in curve["skipped"][0]["why"]
    assert sorted({p["images"] for p in curve["points"]}) == [3, 6, 15]
    assert curve["verdict"] != "unreadable"


def test_too_few_sizes_cannot_fit_and_say_so():
    gen = Generator(3, 16, 2.0, seed=0)
    curve = learning_curve(*gen.draw(3), *gen.draw(10))
    assert [s["fraction"] for s in curve["skipped"]] == [0.1, 0.25]
    assert (curve["verdict"], curve["cause"]) == ("unreadable", "too_few_sizes")
    assert "only 2 training-set sizes" in curve["reason"] and "needs 3" in curve["reason"]


def test_no_validation_images_cannot_be_read():
    gen = Generator(2, 8, 1.0, seed=0)
    curve = learning_curve(*gen.draw(20), None, None)
    assert (curve["verdict"], curve["cause"]) == ("unreadable", "no_validation")
    assert curve["points"] == []


def test_subsets_keep_every_class_in_proportion():
    labels = np.array([0] * 40 + [1] * 20 + [2] * 10)
    rows, why = stratified_rows(labels, 0.25, np.random.default_rng(0))
    assert why is None
    assert np.bincount(labels[rows]).tolist() == [10, 5, 2]
    assert len(set(rows.tolist())) == len(rows)


# -- the CLI, the search, the app -----------------------------------------------------------------


def test_cli_json_gives_the_curve_and_its_finding(tmp_path, babysitter_home):
    data = make_image_folder(tmp_path / "data", {"red": 20, "green": 20, "blue": 20}, size=32)
    args = ["learning-curve", str(data), "--backbone", "VGG16", "--weights", "none"]
    done = run_cli(*args, "--image-size", "32", "--json", home=babysitter_home)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    curve = result["learning_curve"]
    assert (result["backbone"], result["weights"], result["image_size"]) == ("VGG16", "none", 32)
    assert result["splits"]["train"] == curve["images"] and curve["val_images"] > 0
    assert {p["fraction"] for p in curve["points"]} <= {0.1, 0.25, 0.5, 1.0}
    assert [p["fraction"] for p in curve["points"]].count(0.5) == 3  # three seeds
    assert result["finding"]["check"] == "more_data"
    assert curve["verdict"] in ("rising", "flat", "unclear", "unreadable")
    assert RunStore(babysitter_home).list_runs() == []  # a question about the data, not a run


@pytest.mark.core
def test_a_search_records_the_curve_and_its_finding(tmp_path):
    from tests.test_search import tiny
    from tuner.search import search

    data = make_image_folder(tmp_path / "data", {"red": 14, "green": 14, "blue": 14}, size=32)
    config = tiny(data, trials=2, stages=1, epochs_head=2, epochs_finetune=0, top_k=0)
    result = search(config, verbose=0, echo=lambda m: None)
    curve = result.summary["learning_curve"]
    assert curve["backbone"] == "VGG16" and curve["points"]
    assert RunStore().get_run(result.run_id).summary["learning_curve"] == curve
    stored = [f for f in RunStore().findings(result.run_id) if f["check"] == "more_data"]
    assert len(stored) == 1 and stored[0]["evidence"]["points"] == curve["points"]
    assert any(f["check"] == "more_data" for f in result.findings)


def test_a_resumed_search_reads_its_stored_curve_back(babysitter_home):
    from tuner.config import SearchConfig
    from tuner.more_data import search_learning_curve

    store = RunStore()
    run = store.create_run("search", "VGG16", {}, "fp", "/data")
    gen = Generator(2, 8, 1.0, seed=0)
    curve = learning_curve(*gen.draw(20), *gen.draw(20))
    store.add_findings(run.id, [more_data_finding(curve)])
    config = SearchConfig(data="/data", backbones=["VGG16"])
    again = search_learning_curve(config, {}, store, run.id, echo=lambda m: None)
    assert again["points"] == curve["points"]
    assert len([f for f in store.findings(run.id) if f["check"] == "more_data"]) == 1


def test_the_chart_draws_points_curve_band_and_projections():
    from app.learning_curve_view import curve_chart

    gen = Generator(4, 256, 0.15, seed=0)
    curve = learning_curve(*gen.draw(60), *gen.draw(150))
    spec = curve_chart(curve).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["area", "line", "circle", "rule", "point", "rule"]
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    datasets = spec["datasets"].values()
    assert any(len(d) == len(curve["points"]) for d in datasets)
    assert any(len(d) == len(curve["line"]) and "high" in d[0] for d in datasets)
    chance = learning_curve(*Generator(3, 64, 0.0, 0).draw(60), *Generator(3, 64, 0.0, 1).draw(60))
    assert curve_chart(chance) is None


def test_datasets_shows_the_newest_curve_of_that_dataset(tmp_path, babysitter_home):
    from app.learning_curve_view import latest_curve

    store = RunStore()
    gen = Generator(2, 8, 1.0, seed=0)
    curve = learning_curve(*gen.draw(20), *gen.draw(20))
    older = store.create_run("search", "VGG16", {}, "a", str(tmp_path / "data"))
    store.set_status(older.id, "completed", summary={"learning_curve": {**curve, "old": True}})
    newer = store.create_run("search", "VGG16", {}, "b", str(tmp_path / "data"))
    store.set_status(newer.id, "completed", summary={"learning_curve": curve})
    other = store.create_run("search", "VGG16", {}, "c", str(tmp_path / "other"))
    store.set_status(other.id, "completed", summary={"learning_curve": curve})
    found, run = latest_curve(store, tmp_path / "data")
    assert run.id == newer.id and "old" not in found
    assert latest_curve(store, tmp_path / "nowhere") == (None, None)


def test_results_and_datasets_draw_a_stored_curve(tmp_path, babysitter_home):
    from tests.apptest import page

    data = make_image_folder(tmp_path / "data", {"cat": 8, "dog": 8})
    gen = Generator(4, 256, 0.15, seed=0)
    curve = {**learning_curve(*gen.draw(60), *gen.draw(150)), "backbone": "VGG16"}
    store = RunStore()
    config = {"data": str(data), "backbones": ["VGG16"], "weights": "none"}
    run = store.create_run("search", "VGG16", config, "fp", str(data.resolve()))
    store.add_findings(run.id, [more_data_finding(curve)])
    store.set_status(run.id, "completed", summary={"learning_curve": curve, "best_trial": "s1-0"})

    results = page("results", run_id=run.id)
    assert "Would more data help?" in [s.value for s in results.subheader]
    assert any("rising: " in m.value for m in results.markdown)
    assert results.get("vega_lite_chart")

    datasets = page("datasets")
    datasets.text_input(key="folder").input(str(data)).run()
    datasets.button(key="add_folder").click().run()
    assert not datasets.exception
    assert "Would more data help?" in [s.value for s in datasets.subheader]
    said = " ".join(c.value for c in datasets.caption)
    assert "doubling the training images should add about" in said
