from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lime_spark.cli import build_parser, config_from_args
from lime_spark.config import JobConfig, load_config, render_default_yaml
from lime_spark.exceptions import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"input": "in.parquet", "output": "out", "model": "m.keras"}


def test_default_yaml_lists_every_option_with_its_default_and_a_comment():
    text = (REPO / "conf" / "default.yaml").read_text()
    assert text == render_default_yaml(), "regenerate conf/default.yaml from lime_spark.config"
    values = yaml.safe_load(text)
    assert list(values) == [f.name for f in JobConfig.options()]
    lines = text.splitlines()
    for f in JobConfig.options():
        i = lines.index(next(line for line in lines if line.startswith(f"{f.name}:")))
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 10


def test_default_yaml_as_a_config_file_gives_the_defaults(tmp_path):
    cfg = load_config(config_file=str(REPO / "conf" / "default.yaml"), overrides=REQUIRED)
    assert cfg == JobConfig(**REQUIRED)


def test_precedence_file_then_set_then_options(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("num_samples: 300\ntop_labels: 2\nfill: mean\n")
    args = build_parser().parse_args([
        "explain", "--config", str(conf), "--set", "top_labels=3", "--set", "model_args.alpha=0.25",
        "--input", "i", "--output", "o", "--model", "mobilenet", "--top-labels", "4",
        "--fill", "[10, 20, 30]", "--weights", "null", "--run-id", "nightly"])
    cfg = config_from_args(args)
    assert (cfg.n_samples, cfg.top_labels, cfg.fill) == (300, 4, [10, 20, 30])
    assert cfg.model_args == {"alpha": 0.25} and cfg.weights is None and cfg.run_id == "nightly"


def test_lime_names_are_accepted_as_aliases_once(tmp_path):
    # n_samples / label_names are the names; num_samples / labels (lime's) set the same options
    for flag in ("--n-samples", "--num-samples"):
        args = build_parser().parse_args(["explain", "--input", "i", "--output", "o",
                                          "--model", "m", flag, "77", "--labels", "0123"])
        cfg = config_from_args(args)
        assert cfg.n_samples == 77 and cfg.label_names == "0123"
    conf = tmp_path / "c.yaml"
    conf.write_text("num_samples: 12\nlabels: 0123\n")
    cfg = load_config(config_file=str(conf), overrides=REQUIRED)
    assert cfg.n_samples == 12 and cfg.label_names == "0123"       # an alias is a text option too
    with pytest.raises(ConfigurationError, match="'n_samples' once.*'num_samples'"):
        load_config(overrides={**REQUIRED, "n_samples": 10, "num_samples": 20})
    assert "num_samples" not in JobConfig(**REQUIRED).to_dict()


def test_run_id_defaults_to_utc_time():
    assert JobConfig(**REQUIRED).resolved().run_id.endswith("Z")


@pytest.mark.parametrize("bad,match", [
    ({"num_sampels": 10}, "Unknown option"),
    ({"n_samples": 1}, "n_samples"),
    ({"num_samples": 1}, "n_samples"),
    ({"segmentation": "watershed"}, "segmentation"),
    ({"run_id": "../x"}, "run_id"),
    ({"overlays": "yes"}, "overlays"),
    ({"partitions": 0}, "partitions"),
])
def test_bad_values_name_the_option(bad, match):
    with pytest.raises(ConfigurationError, match=match):
        load_config(overrides={**REQUIRED, **bad})


def test_missing_required_option():
    with pytest.raises(ConfigurationError, match="--input"):
        load_config(overrides={"output": "o", "model": "m"})


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["explain", "--help"])
    text = capsys.readouterr().out
    for f in JobConfig.options():
        assert "--" + f.name.replace("_", "-") in text


# --- run ids are text, checked by one rule -------------------------------------------------------

@pytest.mark.parametrize("written,run_id", [
    ("0123", "0123"), ("2026-11-23", "2026-11-23"), ("1e3", "1e3"), ("0x1F", "0x1F"),
    ("true", "true"), ("12_000", "12_000"), ("'0123'", "0123"), ('"2026-11-23"', "2026-11-23"),
    ("20261123T190000Z", "20261123T190000Z"), ("null", None),
])
def test_run_id_is_kept_as_written_in_set_config_file_and_option(tmp_path, written, run_id):
    assert load_config(assignments=[f"run_id={written}"], overrides=REQUIRED).run_id == run_id
    conf = tmp_path / "c.yaml"
    conf.write_text(f"run_id: {written}\nnum_samples: 300\nlabels: [cat, dog]\n")
    cfg = load_config(config_file=str(conf), overrides=REQUIRED)
    assert cfg.run_id == run_id
    assert cfg.n_samples == 300 and cfg.label_names == ["cat", "dog"]   # other values stay typed
    conf.write_text(f"run-id: {written}\n")
    assert load_config(config_file=str(conf), overrides=REQUIRED).run_id == run_id
    if run_id is not None and not written.startswith(("'", '"')):
        args = build_parser().parse_args(
            ["explain", "--input", "i", "--output", "o", "--model", "m", "--run-id", written])
        assert config_from_args(args).run_id == run_id


def test_text_options_are_never_reinterpreted_by_yaml(tmp_path):
    cfg = load_config(assignments=["input=2026-11-23", "database=d0123", "labels=imagenet",
                                   "weights=null", "num_samples=300", "fill=[1, 2, 3]"],
                      overrides={"output": "o", "model": "m"})
    assert (cfg.input, cfg.database, cfg.label_names, cfg.weights) == (
        "2026-11-23", "d0123", "imagenet", None)
    assert cfg.n_samples == 300 and cfg.fill == [1, 2, 3]
    with pytest.raises(ConfigurationError, match=r"database='1e3'"):     # not 1000.0
        load_config(assignments=["database=1e3"], overrides=REQUIRED)


@pytest.mark.parametrize("value", [83, 2026, 1.5, True, ["a"], {"a": 1}])
def test_a_non_string_run_id_is_an_error_not_coerced(value):
    with pytest.raises(ConfigurationError,
                       match=r"Expected run_id to be text .*Received: run_id=.* of type"):
        load_config(overrides={**REQUIRED, "run_id": value})
    with pytest.raises(ConfigurationError, match="run_id"):
        JobConfig(**REQUIRED, run_id=value)


def test_a_list_or_mapping_for_run_id_in_yaml_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match="Expected run_id to be text"):
        load_config(assignments=["run_id=[1, 2]"], overrides=REQUIRED)
    conf = tmp_path / "c.yaml"
    conf.write_text("run_id: {a: 1}\n")
    with pytest.raises(ConfigurationError, match="Expected run_id to be text"):
        load_config(config_file=str(conf), overrides=REQUIRED)


@pytest.mark.parametrize("run_id", ["", ".", "..", "a/b", "../x", "a b", "x" * 65, "r\u00e9",
                                    "__HIVE_DEFAULT_PARTITION__", "a\n", "run=1"])
def test_check_run_id_refuses(run_id):
    from lime_spark.config import RUN_ID_PATTERN, check_run_id

    assert RUN_ID_PATTERN.fullmatch(run_id) is None
    with pytest.raises(ConfigurationError, match=r"Expected run_id of 1-64 letters.*Received: "):
        check_run_id(run_id)


@pytest.mark.parametrize("run_id", ["0123", "2026-11-23", "nightly.2", "...", "_x", "-", "x" * 64,
                                    "20261123T190000Z"])
def test_check_run_id_accepts(run_id):
    from lime_spark.config import check_run_id

    assert check_run_id(run_id) == run_id
    assert JobConfig(**REQUIRED, run_id=run_id).run_id == run_id
