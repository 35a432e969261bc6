import pytest

from datamarket.scenarios import ScenarioError, available_kinds, parse_scenario


def test_malformed_toml_is_one_clear_error() -> None:
    with pytest.raises(ScenarioError, match="malformed TOML at line 1, column 8"):
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


def test_kinds_come_from_the_family_registry() -> None:
    from datamarket.families import families

    assert available_kinds() == sorted(f.kind for f in families() if f.scenario is not None)


def test_scenario_and_service_share_each_familys_parameters() -> None:
    """One input model per family: a scenario's defaults for the market parameters are the service's,
    and the service accepts what the scenario accepts (the broker's solver included)."""
    from datamarket.scenarios import default_config, scenario_module
    from datamarket.service.adapters import builtin_adapters, load_adapter

    for kind, ref in builtin_adapters().items():
        adapter = load_adapter(ref)
        model = adapter.params_model
        config = scenario_module(kind).Config
        shared = [n for n in model.model_fields if n in config.model_fields]
        assert shared, kind
        for name in shared:
            if kind == "balanced_market" and name == "groups":
                continue  # a scenario names its groups, a service market numbers them
            if kind == "realtime_market" and name == "horizon":  # online: the number of buyers is unknown
                assert model.model_fields[name].default == "doubling" and "doubling" in str(
                    config.model_fields[name].annotation
                )
                continue
            assert config.model_fields[name].default == model.model_fields[name].default, (kind, name)
    broker = load_adapter(builtin_adapters()["broker"])
    assert broker.validate_params({})["solver"] == default_config("broker").solver == "auto"
    for solver in ("auto", "E1", "E2", "E3", "support"):
        assert broker.validate_params({"solver": solver})["solver"] == solver


def test_a_family_from_an_entry_point_is_discovered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Another package's family (entry-point group ``datamarket.families``) joins the built-ins; a
    plug-in cannot take a built-in kind, and one that does not load is skipped."""
    from importlib import metadata

    from datamarket import families as registry

    plugin = registry.Family("plug_market", "Plug, In", "A plug-in family.", scenario="plug.scenario")
    points = [
        metadata.EntryPoint("plug", "plug.family:FAMILY", registry.ENTRY_POINT_GROUP),
        metadata.EntryPoint("broker", "plug.family:BROKER", registry.ENTRY_POINT_GROUP),
        metadata.EntryPoint("broken", "no_such_module:FAMILY", registry.ENTRY_POINT_GROUP),
    ]
    loaded = {"plug": plugin, "broker": registry.Family("broker", "x", "y")}
    monkeypatch.setattr(
        metadata.EntryPoint, "load", lambda ep: loaded[ep.name] if ep.name in loaded else 1 / 0
    )
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: points)
    registry._plugins.cache_clear()
    try:
        kinds = [f.kind for f in registry.families()]
        assert kinds[-1] == "plug_market" and kinds.count("broker") == 1
        assert registry.family("plug_market").scenario == "plug.scenario"
        assert registry.family("plug_market").adapter == "datamarket.service.adapters.plug_market:ADAPTER"
    finally:
        registry._plugins.cache_clear()


def test_misspelt_kind_and_key_get_suggestions_with_1_based_locations() -> None:
    with pytest.raises(ScenarioError, match=r"kind 'brokr' \(did you mean 'broker'\?\)"):
        parse_scenario('kind = "brokr"')
    text = 'kind = "broker"\nsigam = 1.0\n[[contributors]]\nname = "a"\ncots = 1.0\n'
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    message = str(info.value)
    assert "sigam: unknown key (did you mean 'sigma'?)" in message
    assert "contributors[1].cots: unknown key (did you mean 'cost'?)" in message
    assert "contributors[1].cost: missing" in message and "Value error" not in message
