"""mlpcli.config: resolving flat option values over a base, the TOML config file, unknown names,
and the JSON round trip a model file stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpcli import config
from mlpcli.errors import UsageError


def test_defaults_and_values_are_parsed_into_their_sections() -> None:
    s = config.resolve({"hidden": "16,8", "lr": "0.01", "--target": "y", "epochs": None})
    assert s.model.hidden == (16, 8)
    assert s.train.lr == 0.01
    assert s.data.target == ("y",)
    assert s.train.epochs == config.Settings().train.epochs  # None means "not given"


def test_values_override_the_base_and_leave_the_rest() -> None:
    base = config.resolve({"hidden": "16", "lr": "0.01"})
    s = config.resolve({"lr": "0.5"}, base=base)
    assert (s.model.hidden, s.train.lr) == ((16,), 0.5)
    assert base.train.lr == 0.01  # frozen: the base is not changed
    assert s == base.replace(lr=0.5)


def test_an_unknown_option_is_named_with_the_closest_one_and_where_it_came_from() -> None:
    with pytest.raises(
        UsageError, match=r"Unknown option 'epochz' in run\.toml; did you mean 'epochs'\?"
    ):
        config.resolve({"epochz": 3}, source="run.toml")
    with pytest.raises(UsageError, match=r"Unknown option\(s\) 'zzz'; known options: "):
        config.resolve({"zzz": 3})


def test_config_file_tables_group_flat_options(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('target = "y"\n[model]\nhidden = [8, 4]\n[train]\nlr = 0.1\n')
    values = config.read_config_file(path)
    assert values == {"target": "y", "hidden": [8, 4], "lr": 0.1}
    s = config.resolve(values)
    assert (s.model.hidden, s.train.lr) == ((8, 4), 0.1)


def test_settings_round_trip_through_json() -> None:
    s = config.resolve({"hidden": "7,3", "dropout": "0.25", "target": "y"})
    again = config.Settings.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


def test_every_option_lives_in_one_section_under_one_name() -> None:
    fields = config.all_fields()
    assert {attr for attr, _ in fields.values()} == {"data", "preprocess", "model", "train"}
    assert config.normalise_key("--hidden-layer") == "hidden_layer"
