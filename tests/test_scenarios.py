import pytest

from datamarket.scenarios import ScenarioError, available_kinds, parse_scenario


def test_malformed_toml_is_one_clear_error() -> None:
    with pytest.raises(ScenarioError, match="malformed TOML"):
        parse_scenario("kind = = 3")


def test_unknown_kind_lists_available_kinds() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario kind 'auction'"):
        parse_scenario('kind = "auction"')
    with pytest.raises(ScenarioError, match="kind: missing"):
        parse_scenario("seed = 1")
    with pytest.raises(ScenarioError, match="top level"):
        parse_scenario("[1, 2]", "json")


def test_kinds_are_discovered() -> None:
    assert all(k.isidentifier() for k in available_kinds())
