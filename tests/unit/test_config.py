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
    assert (cfg.num_samples, cfg.top_labels, cfg.fill) == (300, 4, [10, 20, 30])
    assert cfg.model_args == {"alpha": 0.25} and cfg.weights is None and cfg.run_id == "nightly"


def test_run_id_defaults_to_utc_time():
    assert JobConfig(**REQUIRED).resolved().run_id.endswith("Z")


@pytest.mark.parametrize("bad,match", [
    ({"num_sampels": 10}, "Unknown option"),
    ({"num_samples": 1}, "num_samples"),
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
