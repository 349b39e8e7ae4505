"""Pipeline files: every mistake is an error naming the file, section and key."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from anomae.errors import PipelineError  # noqa: E402
from anomae.pipeline import load_pipeline, parse_pipeline  # noqa: E402
from anomae.train.config import train_config  # noqa: E402

BASE = '[data]\ntrain = "t.parquet"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dta]\n", "unknown section(s) ['dta']"),
        (BASE + "[window]\nlenght = 3\n", "[window]: unknown key(s) ['lenght']"),
        (BASE + '[window]\nlength = "32"\n', "key 'length' must be int, got str"),
        (BASE + "[window]\nlength = 0\n", "window length must be >= 1"),
        (BASE + "[model]\nhidden = 64\n", "key 'hidden' must be a list"),
        (BASE + '[model]\nkind = "lstm"\n', "arch kind must be 'dense' or 'conv'"),
        (BASE + '[noise]\nkind = "pink"\n', "[noise]"),
        (BASE + '[sparsity]\nkind = "kl"\n', 'code_activation = "sigmoid"'),
        (BASE + "[train]\nepochs = 0\n", "epochs must be >= 1"),
        (BASE + "[train]\nepochs = true\n", "key 'epochs' must be int"),
        (BASE + '[train]\narch = "dense"\n', "have sections of their own"),
        ("[window]\nlength = 8\n", "'train' (file or list of files) is required"),
        (BASE + '[calibrate]\nmethod = "quantile"\nq = 2\n', "q must be in (0, 1)"),
        (BASE + "[calibrate]\nq = 0.99\n", "q is not a parameter of method 'events' (the default)"),
        (BASE + "[calibrate]\nfalse_events_per_day = 0\n", "false_events_per_day must be > 0"),
        (BASE + '[calibrate]\nmethod = "pot"\nfalse_events_per_day = 1\n', "belongs to events"),
        (BASE + "[calibrate]\nmin_windows = 3\n", "key 'min_windows' must be a list"),
        (BASE + "[calibrate]\nmin_windows = [0, 2]\n", "candidates must be >= 1"),
        (BASE + "[calibrate]\nholdout = 1.0\n", "holdout must be in [0, 1)"),
        (BASE + "[likelihood]\nepsilon = 2.0\n", "[likelihood]: likelihood epsilon must be in"),
        (BASE + "[likelihood]\nshrt = 3\n", "[likelihood]: unknown key(s) ['shrt']"),
        (BASE + '[likelihood]\nshort = "5"\n', "key 'short' must be int"),
        (BASE + '[export]\nquantize = "int4"\n', "[export]: quantize must be 'none' or 'int8'"),
    ],
)
def test_bad_pipelines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PipelineError) as err:
        load_pipeline(path)
    assert message in str(err.value)
    assert "bad.toml" in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "nope.toml")
    bad = tmp_path / "x.toml"
    bad.write_text("[data\n")
    with pytest.raises(PipelineError, match="not valid TOML"):
        load_pipeline(bad)


def test_sections_reach_the_train_config() -> None:
    pipe = parse_pipeline(
        {
            "data": {"train": "t.parquet"},
            "model": {"kind": "conv", "hidden": [16, 4], "code_activation": "sigmoid"},
            "noise": {"kind": "salt_pepper", "p": 0.2},
            "sparsity": {"kind": "kl", "rho": 0.1, "beta": 0.01},
            "train": {"epochs": 7, "lr": 0.01, "device": "cpu"},
        }
    )
    cfg = train_config(pipe)
    assert cfg.arch.kind == "conv" and cfg.arch.hidden == (16, 4)
    assert cfg.noise.kind == "salt_pepper" and cfg.noise.p == 0.2
    assert cfg.sparsity.kind == "kl" and cfg.sparsity.rho == 0.1
    assert cfg.epochs == 7 and cfg.lr == 0.01
    assert pipe.data.train == ("t.parquet",)


def test_likelihood_section_sets_the_alarm_policy() -> None:
    from anomae.likelihood import Likelihood

    assert parse_pipeline({"data": {"train": "t.parquet"}}).likelihood is None
    pipe = parse_pipeline({"data": {"train": "t.parquet"}, "likelihood": {}})
    assert pipe.likelihood == Likelihood()
    pipe = parse_pipeline(
        {
            "data": {"train": "t.parquet"},
            "likelihood": {"short": 5, "epsilon": 1e-4, "min_spread": 0},
        }
    )
    assert pipe.likelihood == Likelihood(short=5, epsilon=1e-4, min_spread=0.0)
    assert pipe.to_dict()["likelihood"]["short"] == 5


def test_shipped_pipelines_parse() -> None:
    paths = sorted(Path(__file__).resolve().parents[1].glob("pipelines/*.toml"))
    assert {p.stem for p in paths} >= {"demo", "skab", "skab_anomaly_free", "nab"}
    for path in paths:
        pipe = load_pipeline(path)
        assert pipe.data.train or pipe.benchmark is not None, path


# [window] center_features
CF_DOC = {"data": {"train": "t.parquet"}, "model": {"hidden": [4]}, "train": {"epochs": 1}}


def _doc(**window: object) -> dict:
    return {**CF_DOC, "window": {"length": 8, **window}}


def test_center_features_parse_and_exclude_center() -> None:
    pipe = parse_pipeline(_doc(center_features=["temp"]))
    assert pipe.window.center_features == ("temp",) and pipe.window.centred == ["temp"]
    assert parse_pipeline(_doc()).window.centred is False
    assert parse_pipeline(_doc(center=True)).window.centred is True
    with pytest.raises(PipelineError, match="not both"):
        parse_pipeline(_doc(center=True, center_features=["temp"]))


def test_recipe_is_laid_under_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "defaults").mkdir()
    (tmp_path / "defaults" / "shape.toml").write_text(
        "[window]\nlength = 8\ntrain_stride = 2\n[model]\nhidden = [4]\n[score]\nmin_windows = 5\n"
    )
    (tmp_path / "p.toml").write_text(
        'recipe = "defaults/shape.toml"\n[data]\ntrain = "t.parquet"\n[window]\nlength = 16\n'
    )
    pipe = load_pipeline(tmp_path / "p.toml")
    assert (pipe.window.length, pipe.window.train_stride) == (16, 2)  # key by key
    assert pipe.model == {"hidden": [4]} and pipe.score.min_windows == 5


def test_a_method_of_its_own_drops_the_recipes_method_parameters() -> None:
    from anomae.pipeline import laid_over

    base = {"calibrate": {"method": "ksigma", "k": 5.0, "holdout": 0.4}, "window": {"length": 16}}
    own = laid_over(base, {"calibrate": {"method": "quantile", "q": 0.99}})
    assert own["calibrate"] == {"method": "quantile", "q": 0.99, "holdout": 0.4}
    same = laid_over(base, {"calibrate": {"method": "ksigma", "holdout": 0.2}})
    assert same["calibrate"] == {"method": "ksigma", "k": 5.0, "holdout": 0.2}
    assert laid_over(base, {"window": {"stride": 2}})["calibrate"] == base["calibrate"]
    assert base["calibrate"]["k"] == 5.0  # the recipe's own document is left as it was
    # a recipe without a method has the default's (events) parameters dropped the same way
    budget = {"calibrate": {"false_events_per_day": 1.0}}
    assert laid_over(budget, {"calibrate": {"method": "quantile"}})["calibrate"] == {
        "method": "quantile"
    }


def test_recipe_auto_in_a_pipeline_file(tmp_path: Path) -> None:
    """``recipe = "auto"``: the recipe for the data's shape, by the count given or
    ``[data] features``; without either, multivariate for now and marked ``auto``."""
    from anomae.pipeline import shape_recipe, with_recipe

    assert [shape_recipe(n) for n in (1, 2, 25)] == ["univariate", "multivariate", "multivariate"]
    p = tmp_path / "p.toml"
    p.write_text('recipe = "auto"\n[data]\ntrain = "t.parquet"\n')
    later = load_pipeline(p)
    assert later.auto and later.window.length == 8 and "auto" not in later.to_dict()
    one = load_pipeline(p, n_features=1)
    assert not one.auto and one.window.length == 16 and one.likelihood is not None
    p.write_text('recipe = "auto"\n[data]\ntrain = "t.parquet"\nfeatures = ["x"]\n')
    listed = load_pipeline(p)
    assert not listed.auto and listed.window.length == 16
    named = tmp_path / "named.toml"
    named.write_text('recipe = "multivariate"\n[data]\ntrain = "t.parquet"\n')
    assert not load_pipeline(named, n_features=1).auto  # a named recipe stays
    assert load_pipeline(named, n_features=1).window.length == 8
    with pytest.raises(PipelineError, match="recipe 'auto' is chosen by the data's features"):
        with_recipe({"recipe": "auto"}, p)  # where no data is read


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ('recipe = "missing.toml"\n', "not found"),
        ("recipe = 3\n", "must be a name or a file name"),
        ('recipe = "bad.toml"\n', "not valid TOML"),
        ('recipe = "loop.toml"\n', "cannot name another recipe"),
    ],
)
def test_bad_recipes_are_named(tmp_path: Path, recipe: str, message: str) -> None:
    (tmp_path / "bad.toml").write_text("[window\n")
    (tmp_path / "loop.toml").write_text('recipe = "bad.toml"\n')
    (tmp_path / "p.toml").write_text(recipe + '[data]\ntrain = "t.parquet"\n')
    with pytest.raises(PipelineError, match=message):
        load_pipeline(tmp_path / "p.toml")


def test_default_recipes_parse_and_benchmarks_use_them(tmp_path: Path) -> None:
    """One recipe per data shape, and every benchmark pipeline takes its settings from one
    (so a benchmark runs on what a user's data gets)."""
    import tomllib

    from anomae.pipeline import RECIPES

    root = Path(__file__).resolve().parents[1] / "pipelines"
    recipes = sorted(RECIPES.glob("*.toml"))  # shipped in the package
    assert {p.stem for p in recipes} == {"univariate", "multivariate"}
    for recipe in recipes:
        for name in (recipe.stem, str(recipe)):  # by name, or as a file
            (tmp_path / "p.toml").write_text(f'recipe = "{name}"\n[data]\ntrain = "t.parquet"\n')
            load_pipeline(tmp_path / "p.toml")
    for path in root.glob("*.toml"):
        doc = tomllib.loads(path.read_text())
        if "benchmark" in doc:
            assert doc.get("recipe") in {"univariate", "multivariate"}, path


def test_data_paths_are_relative_to_the_pipeline_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "p.toml").write_text(
        '[data]\ntrain = ["d/a.csv", "/abs/b.csv"]\ntest = "d/t.csv"\ncalibration = "c.csv"\n'
        '[benchmark]\ndataset = "labelled"\ntrain = "l/train.csv"\ntest = "l/test.csv"\n'
    )
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    pipe = load_pipeline("exp/p.toml")
    exp = Path("exp")
    assert pipe.data.train == (str(exp / "d/a.csv"), "/abs/b.csv")
    assert pipe.data.test == (str(exp / "d/t.csv"),)
    assert pipe.data.calibration == (str(exp / "c.csv"),)
    bench = pipe.benchmark
    assert (bench.train, bench.test) == (str(exp / "l/train.csv"), str(exp / "l/test.csv"))
    assert pipe.benchmark.data == ""  # unset stays unset: the default data folder


def test_shipped_demo_pipeline_points_at_the_repository_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)  # anomae run pipelines/demo.toml works from anywhere
    pipe = load_pipeline(root / "pipelines" / "demo.toml")
    assert [Path(p).resolve() for p in (*pipe.data.train, *pipe.data.test)] == [
        root / "data" / "demo" / "train.parquet",
        root / "data" / "demo" / "test.parquet",
    ]


def test_timestamp_unit_is_checked() -> None:
    doc = {"data": {"train": "t.csv", "timestamp_unit": "ms"}}
    assert parse_pipeline(doc).data.table().timestamp_unit == "ms"
    with pytest.raises(PipelineError, match=r"\[data\]: timestamp unit 'min' is not one of"):
        parse_pipeline({"data": {"train": "t.csv", "timestamp_unit": "min"}})


def test_rows_without_time_turn_an_events_budget_into_the_quantile() -> None:
    rows = parse_pipeline({"data": {"train": "t.csv", "timestamp": ""},
                           "calibrate": {"holdout": 0.3, "false_events_per_day": 1.0}})  # fmt: skip
    c = rows.calibrate
    assert (c.method, c.q, c.holdout, c.false_events_per_day) == ("quantile", 0.99, 0.3, None)
    assert rows.data.columns()["timestamp"] == "#row"  # what the card records
    kept = parse_pipeline({"data": {"train": "t.csv", "timestamp": ""},
                           "calibrate": {"method": "ksigma", "k": 4.0}})  # fmt: skip
    assert (kept.calibrate.method, kept.calibrate.k) == ("ksigma", 4.0)
    timed = parse_pipeline({"data": {"train": "t.csv"}})
    assert timed.calibrate.method == "events" and timed.data.columns()["timestamp"] == "timestamp"


def test_rows_without_time_have_no_daily_season() -> None:
    """The univariate recipe's likelihood compares the same time of day; rows without time
    have none (a 'day' of 86,400 rows would cap alarms at random)."""
    from anomae.pipeline import Pipeline, with_recipe

    def pipe(timestamp: str) -> Pipeline:
        doc = {"recipe": "univariate", "data": {"train": "t.csv", "timestamp": timestamp}}
        return parse_pipeline(with_recipe(doc, Path("p.toml")))

    rows, timed = pipe(""), pipe("timestamp")
    assert rows.likelihood is not None and timed.likelihood is not None
    assert (rows.likelihood.season_s, timed.likelihood.season_s) == (0.0, 86400.0)
    assert rows.likelihood.short == timed.likelihood.short  # the rest of the policy stays
