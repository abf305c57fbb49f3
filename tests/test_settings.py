"""The one settings mechanism: strict keys with suggestions, env vars, YAML overrides, docs."""

from pathlib import Path

import pytest

from sinternal_verl.data.config import PipelineConfig
from sinternal_verl.guards.config import GuardConfig
from sinternal_verl.rewards.settings import RewardSettings
from sinternal_verl.settings import ConfigError, Settings, load, load_yaml, setting, settings_table
from sinternal_verl.settings_docs import TABLES, stale, update

ROOT = Path(__file__).resolve().parents[1]


class Inner(Settings):
    depth: int = setting(1, "how deep", ge=0)


class Outer(Settings):
    name: str = setting("x", "a name", env="TEST_SETTINGS_NAME")
    inner: Inner = setting(Inner(), "nested")


def test_unknown_keys_name_the_nearest_known_key_at_any_depth():
    with pytest.raises(ConfigError, match="unknown key 'nmae'; did you mean 'name'"):
        load(Outer, {"nmae": "y"})
    with pytest.raises(ConfigError, match="unknown key 'inner.dpeth'; did you mean 'depth'"):
        load(Outer, {"inner": {"dpeth": 2}})
    with pytest.raises(
        ConfigError, match=r"inner.depth: Input should be greater than or equal to 0 \(got -1\)"
    ):
        load(Outer, {"inner": {"depth": -1}})


def test_env_fills_only_unset_fields_and_config_wins():
    assert load(Outer, {}, env={"TEST_SETTINGS_NAME": "from-env"}).name == "from-env"
    assert load(Outer, {"name": "cfg"}, env={"TEST_SETTINGS_NAME": "from-env"}).name == "cfg"


def test_yaml_with_hydra_style_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: file\ninner:\n  depth: 3\n")
    cfg = load_yaml(Outer, path, ["inner.depth=5"])
    assert cfg.name == "file" and cfg.inner.depth == 5
    with pytest.raises(ConfigError, match="not key=value"):
        load_yaml(Outer, path, ["inner.depth"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(Outer, tmp_path / "missing.yaml")


def test_reward_kwargs_split_by_prefix_and_every_key_is_checked():
    s = RewardSettings.from_kwargs(
        {"guard_kind": "lexical", "controversial": 0.5, "math_symbolic_timeout_s": 2, "gc_threshold": 0},
        env={},
    )
    assert s.guard.kind == "lexical" and s.safety.controversial_credit == 0.5
    assert s.math.symbolic_timeout_s == 2 and s.manager.gc_threshold == 0
    with pytest.raises(ConfigError) as info:
        RewardSettings.from_kwargs(
            {"controversal": "loose", "guard_kindd": "x", "math_corect_score": 1}, env={}
        )
    text = str(info.value)  # every problem at once, each with its suggestion
    assert "did you mean 'controversial'" in text and "did you mean 'guard_kind'" in text
    assert "did you mean 'math_correct_score'" in text


def test_guard_env_vars_map_onto_the_same_fields():
    env = {"SINTERNAL_GUARD_URLS": "http://a:1/, http://b:2", "SINTERNAL_GUARD_KIND": "llamaguard"}
    s = RewardSettings.from_kwargs({}, env=env)
    assert s.guard.urls == ("http://a:1", "http://b:2") and s.guard.kind == "llamaguard"
    assert RewardSettings.from_kwargs({"guard_kind": "wildguard"}, env=env).guard.kind == "wildguard"
    with pytest.raises(ConfigError, match="did you mean 'qwen3guard'"):
        GuardConfig.from_mapping({}, env={"SINTERNAL_GUARD_KIND": "qwen3gaurd"})


def test_a_model_guard_without_url_fails_when_built_not_when_read():
    cfg = GuardConfig.from_mapping({}, env={})  # a math-only run reads guard settings it never uses
    with pytest.raises(ConfigError, match="needs at least one URL"):
        cfg.require_urls()


def test_pipeline_yaml_typos_fail_at_load_with_their_path():
    example = ROOT / "examples" / "verification_pipeline" / "config.yaml"
    with pytest.raises(
        ConfigError, match="unknown key 'sample.params.temprature'; did you mean 'temperature'"
    ):
        PipelineConfig.from_yaml(example, ["+sample.params.temprature=0.3"])
    with pytest.raises(ConfigError, match="label.guard: unknown key 'timeot_s'; did you mean 'timeout_s'"):
        PipelineConfig.from_yaml(example, ["+label.guard.timeot_s=3"])
    assert PipelineConfig.from_yaml(example, ["sample.params.n=3"]).sample.params.n == 3


def test_settings_table_rows_carry_defaults_docs_and_env():
    rows = {key: (default, doc) for key, default, doc in settings_table(Outer)}
    assert rows["name"] == ("x", "a name (env `TEST_SETTINGS_NAME`)") and rows["inner.depth"] == (
        "1",
        "how deep",
    )


def test_every_setting_has_a_doc():
    for name, rows in TABLES.items():
        missing = [key for key, _, doc in rows() if not doc.strip()]
        assert not missing, f"{name}: settings without a one-line doc: {missing}"


def test_docs_tables_match_the_definitions():
    """Regenerate with ``python -m sinternal_verl.settings_docs docs/configuration.md README.md``."""
    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert stale(reference) == [], "every entry point's settings are in docs/configuration.md"
    readme = (ROOT / "README.md").read_text()
    assert "<!-- settings:reward -->" in readme and update(readme) == readme
    server = (ROOT / "sinternal_verl" / "server" / "README.md").read_text()
    assert "<!-- settings:server -->" in server and update(server) == server


class Listed(Settings):
    items: list[Inner] = setting([], "entries")


def test_yaml_overrides_reach_list_items_by_index(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text("items:\n  - depth: 1\n  - depth: 2\n")
    assert [i.depth for i in load_yaml(Listed, path, ["items.1.depth=7"]).items] == [1, 7]
    with pytest.raises(ConfigError, match="does not fit"):
        load_yaml(Listed, path, ["items.5.depth=1"])
