"""Settings: the layering, parsing of env / CLI strings, and every error message."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from crawler.errors import SettingsError
from crawler.settings import (
    USER_AGENT,
    CloseOn,
    FeedOptions,
    Settings,
    attribute_docs,
    build_settings,
    changed_settings,
    settings_table_markdown,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build(
    tmp_path: Path,
    toml: str | None = None,
    *,
    custom: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cli: Sequence[str] | Mapping[str, Any] = (),
) -> Settings:
    if toml is not None:
        (tmp_path / "settings.toml").write_text(toml, encoding="utf-8")
    return build_settings(
        project_dir=tmp_path, custom_settings=custom, cli=cli, environ=dict(env or {})
    )


def build_error(tmp_path: Path, toml: str | None = None, **layers: Any) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        build(tmp_path, toml, **layers)
    return info.value


# --- defaults and the project's own file ------------------------------------------------------


def test_defaults_without_any_layer(tmp_path: Path) -> None:
    settings = build(tmp_path)
    assert settings == Settings()
    assert settings.concurrency == 64
    assert settings.concurrency_per_host == 8
    assert settings.timeout == 30.0
    assert settings.retries == 3
    assert settings.retry_http_codes == [408, 429, 500, 502, 503, 504, 522, 524]
    assert settings.max_redirects == 10
    assert settings.user_agent == USER_AGENT
    assert settings.obey_robots is True
    assert settings.max_response_size == 32 * 1024 * 1024
    assert settings.close_on == CloseOn(items=0, pages=0, seconds=0, errors=0)
    assert settings.log_level == "INFO"
    assert settings.spiders == "spiders"
    assert settings.proxy is None
    assert settings.default_headers["Accept-Language"] == "en"


def test_project_dir_none_skips_the_file() -> None:
    assert build_settings(project_dir=None, environ={}) == Settings()


def test_the_projects_settings_toml_validates() -> None:
    settings = build_settings(project_dir=PROJECT_ROOT, environ={})
    assert settings.concurrency == 64
    assert settings.log_level == "INFO"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, "concurrency", 1)  # noqa: B010 - the assignment is the test


def test_a_copy_with_values_keeps_the_layers_of_the_others(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("concurrency = 7\nretries = 1\n")
    settings = build_settings(project_dir=tmp_path, cli=["timeout=5"], environ={})
    copy = settings.with_values(concurrency=3)
    assert (copy.concurrency, copy.retries, copy.timeout) == (3, 1, 5.0)
    assert settings.concurrency == 7  # the original is untouched
    assert {name: source.split(" ")[0] for name, _, source in changed_settings(copy)} == {
        "concurrency": "settings.toml", "retries": "settings.toml", "timeout": "CLI"}


def test_validated_tables_become_their_classes(tmp_path: Path) -> None:
    settings = build_settings(project_dir=tmp_path, environ={}, cli={
        "feeds": {"out.csv": {"fields": ["a", "b"], "batch_item_count": "10"}},
        "close_on": {"items": "3"}})
    assert settings.feeds == {"out.csv": FeedOptions(fields=["a", "b"], batch_item_count=10)}
    assert settings.close_on == CloseOn(items=3)


def test_mutable_defaults_are_not_shared() -> None:
    first, second = Settings(), Settings()
    first.retry_http_codes.append(999)
    first.default_headers["X"] = "y"
    assert 999 not in second.retry_http_codes
    assert "X" not in second.default_headers


# --- each layer overrides every lower one ------------------------------------------------------

LAYERS = ["toml", "custom", "env", "cli"]


def set_concurrency(layer: str, value: int, kwargs: dict[str, Any]) -> None:
    if layer == "toml":
        kwargs["toml"] = f"concurrency = {value}\n"
    elif layer == "custom":
        kwargs["custom"] = {"concurrency": value}
    elif layer == "env":
        kwargs["env"] = {"CRAWLER_CONCURRENCY": str(value)}
    else:
        kwargs["cli"] = [f"concurrency={value}"]


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_overrides_the_default(tmp_path: Path, layer: str) -> None:
    kwargs: dict[str, Any] = {}
    set_concurrency(layer, 5, kwargs)
    assert build(tmp_path, **kwargs).concurrency == 5


@pytest.mark.parametrize(
    ("low", "high"),
    [(LAYERS[i], LAYERS[j]) for i in range(len(LAYERS)) for j in range(i + 1, len(LAYERS))],
)
def test_higher_layer_wins(tmp_path: Path, low: str, high: str) -> None:
    kwargs: dict[str, Any] = {}
    set_concurrency(low, 5, kwargs)
    set_concurrency(high, 7, kwargs)
    assert build(tmp_path, **kwargs).concurrency == 7


def test_layers_touching_different_settings_all_apply(tmp_path: Path) -> None:
    settings = build(
        tmp_path,
        "concurrency = 5\n",
        custom={"retries": 1},
        env={"CRAWLER_TIMEOUT": "9"},
        cli=["depth_limit=2"],
    )
    assert (settings.concurrency, settings.retries, settings.timeout, settings.depth_limit) == (
        5, 1, 9.0, 2,
    )


# --- strings from env and CLI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("concurrency", "10", 10),
        ("download_delay", "0.25", 0.25),
        ("timeout", "5", 5.0),
        ("depth_priority", "-1", -1),
        ("obey_robots", "false", False),
        ("obey_robots", "true", True),
        ("obey_robots", "yes", True),
        ("obey_robots", "no", False),
        ("obey_robots", "1", True),
        ("obey_robots", "0", False),
        ("log_level", "debug", "DEBUG"),
        ("log_level", "Warning", "WARNING"),
    ],
)
def test_strings_are_coerced(tmp_path: Path, name: str, raw: str, expected: object) -> None:
    env_var = "CRAWLER_" + name.upper()
    assert getattr(build(tmp_path, env={env_var: raw}), name) == expected
    assert getattr(build(tmp_path, cli=[f"{name}={raw}"]), name) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[500, 503]", [500, 503]),
        ("500,503", [500, 503]),
        (" 500 , 503 ", [500, 503]),
        ("500", [500]),
        ("", []),
        ("[]", []),
    ],
)
def test_list_from_json_and_comma_forms(tmp_path: Path, raw: str, expected: list[int]) -> None:
    assert build(tmp_path, env={"CRAWLER_RETRY_HTTP_CODES": raw}).retry_http_codes == expected
    assert build(tmp_path, cli=[f"retry_http_codes={raw}"]).retry_http_codes == expected


def test_list_of_import_paths_from_comma_form(tmp_path: Path) -> None:
    settings = build(tmp_path, cli=["pipelines=myproj.pipes:Store,myproj.pipes.Clean"])
    assert settings.pipelines == ["myproj.pipes:Store", "myproj.pipes.Clean"]
    settings = build(tmp_path, env={"CRAWLER_MIDDLEWARES": '["a.b:C"]'})
    assert settings.middlewares == ["a.b:C"]


def test_string_settings_keep_the_raw_text(tmp_path: Path) -> None:
    # These would parse as JSON numbers or lists if the type were not looked at.
    settings = build(
        tmp_path,
        env={"CRAWLER_CRAWL_ID": "123", "CRAWLER_USER_AGENT": "bot/1.0, like Gecko"},
        cli=["spiders=myproj.spiders"],
    )
    assert settings.crawl_id == "123"
    assert settings.user_agent == "bot/1.0, like Gecko"
    assert settings.spiders == "myproj.spiders"


def test_value_may_contain_equals_sign(tmp_path: Path) -> None:
    settings = build(tmp_path, cli=["user_agent=bot (+https://x.test/?a=b)"])
    assert settings.user_agent == "bot (+https://x.test/?a=b)"


def test_empty_string_clears_an_optional_setting(tmp_path: Path) -> None:
    settings = build(tmp_path, "proxy = 'http://127.0.0.1:8080'\n", cli=["proxy="])
    assert settings.proxy is None
    settings = build(tmp_path, cli=["proxy=http://127.0.0.1:8080"])
    assert settings.proxy == "http://127.0.0.1:8080"


def test_mapping_setting_from_json(tmp_path: Path) -> None:
    settings = build(tmp_path, env={"CRAWLER_DEFAULT_HEADERS": '{"Accept": "text/html"}'})
    assert settings.default_headers == {"Accept": "text/html"}


def test_cli_as_a_mapping(tmp_path: Path) -> None:
    settings = build(tmp_path, cli={"concurrency": "3", "close_on.items": 4, "obey_robots": False})
    assert settings.concurrency == 3
    assert settings.close_on.items == 4
    assert settings.obey_robots is False


# --- nested close_on --------------------------------------------------------------------------


def test_close_on_from_toml_table(tmp_path: Path) -> None:
    settings = build(tmp_path, "[close_on]\nitems = 100\nseconds = 2.5\n")
    assert settings.close_on == CloseOn(items=100, seconds=2.5)


def test_close_on_from_env(tmp_path: Path) -> None:
    settings = build(tmp_path, env={"CRAWLER_CLOSE_ON__ITEMS": "5", "CRAWLER_CLOSE_ON__PAGES": "6"})
    assert settings.close_on == CloseOn(items=5, pages=6)
    settings = build(tmp_path, env={"CRAWLER_CLOSE_ON": '{"errors": 3}'})
    assert settings.close_on == CloseOn(errors=3)


def test_close_on_from_dotted_cli(tmp_path: Path) -> None:
    settings = build(tmp_path, cli=["close_on.items=100", "close_on.seconds=60"])
    assert settings.close_on == CloseOn(items=100, seconds=60)


def test_close_on_keys_merge_across_layers(tmp_path: Path) -> None:
    settings = build(
        tmp_path,
        "[close_on]\nitems = 1\npages = 2\n",
        custom={"close_on": {"seconds": 3}},
        env={"CRAWLER_CLOSE_ON__ERRORS": "4"},
        cli=["close_on.items=10"],
    )
    assert settings.close_on == CloseOn(items=10, pages=2, seconds=3, errors=4)


# --- errors: each names the setting and its layer ---------------------------------------------


def test_wrong_type_from_cli(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["concurrency=ten"])
    assert (err.name, err.source) == ("concurrency", "CLI -s")
    assert str(err) == "setting 'concurrency' from CLI -s: expected an integer, got 'ten'"


def test_wrong_type_from_env(tmp_path: Path) -> None:
    err = build_error(tmp_path, env={"CRAWLER_TIMEOUT": "soon"})
    assert (err.name, err.source) == ("timeout", "environment CRAWLER_TIMEOUT")
    assert "expected a number, got 'soon'" in str(err)


def test_wrong_type_from_custom_settings(tmp_path: Path) -> None:
    err = build_error(tmp_path, custom={"obey_robots": "perhaps"})
    assert (err.name, err.source) == ("obey_robots", "spider custom_settings")
    assert "expected true or false, got 'perhaps'" in str(err)


def test_wrong_type_from_toml_names_the_file(tmp_path: Path) -> None:
    err = build_error(tmp_path, "concurrency = 'lots'\n")
    path = (tmp_path / "settings.toml").resolve()
    assert err.name == "concurrency"
    assert err.source == f"settings.toml ({path})"
    assert str(path) in str(err)


def test_error_blames_the_layer_that_won(tmp_path: Path) -> None:
    # The valid TOML value is overridden by a bad CLI one: the CLI is to blame.
    err = build_error(tmp_path, "concurrency = 4\n", cli=["concurrency=0"])
    assert (err.name, err.source) == ("concurrency", "CLI -s")
    assert "must be >= 1, got 0" in str(err)


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"toml": "concurency = 10\n"}, "settings.toml"),
        ({"custom": {"concurency": 10}}, "spider custom_settings"),
        ({"cli": ["concurency=10"]}, "CLI -s"),
    ],
)
def test_unknown_name_suggests_the_closest(
    tmp_path: Path, kwargs: dict[str, Any], source: str
) -> None:
    err = build_error(tmp_path, **kwargs)
    assert err.name == "concurency"
    assert err.source.startswith(source)
    assert err.suggestion == "concurrency"
    assert "unknown setting" in str(err)
    assert "did you mean 'concurrency'?" in str(err)


@pytest.mark.parametrize(
    ("kwargs", "suggestion"),
    [
        ({"cli": ["CONCURRENT_REQUESTS=8"]}, "concurrency"),  # not concurrency_per_host
        ({"cli": ["ROBOTSTXT_OBEY=false"]}, "obey_robots"),
        ({"cli": ["DOWNLOAD_DELAY=1"]}, "download_delay"),  # same name, other case
        ({"toml": "CLOSESPIDER_ITEMCOUNT = 10\n"}, "close_on.items"),
        ({"env": {"CRAWLER_CLOSESPIDER_ITEMCOUNT": "10"}}, "CRAWLER_CLOSE_ON__ITEMS"),
    ],
)
def test_scrapy_setting_names_get_their_name_here(
    tmp_path: Path, kwargs: dict[str, Any], suggestion: str
) -> None:
    err = build_error(tmp_path, **kwargs)
    assert err.suggestion == suggestion
    assert f"did you mean {suggestion!r}?" in str(err)


def test_unknown_env_var_is_an_error_with_suggestion(tmp_path: Path) -> None:
    err = build_error(tmp_path, env={"CRAWLER_CONCURENCY": "10"})
    assert err.source == "environment CRAWLER_CONCURENCY"
    assert err.suggestion == "CRAWLER_CONCURRENCY"


def test_unknown_nested_name_suggests_nested(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["close_on.itemz=5"])
    assert err.name == "close_on.itemz"
    assert err.suggestion == "close_on.items"
    err = build_error(tmp_path, "[closeon]\nitems = 5\n")
    assert err.suggestion == "close_on"


def test_unknown_name_without_close_match_has_no_suggestion(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["zzzzzz=1"])
    assert err.name == "zzzzzz"
    assert err.suggestion is None


def test_allowed_env_vars_and_other_prefixes_are_ignored(tmp_path: Path) -> None:
    settings = build(
        tmp_path,
        env={"CRAWLER_REQUIRE_REDIS": "1", "CRAWLER_TEST_ANYTHING": "x", "PATH": "/bin",
             "CRAWLERX": "1"},
    )
    assert settings == Settings()


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAWLER_RETRIES", "7")
    assert build_settings(project_dir=tmp_path).retries == 7
    monkeypatch.setenv("CRAWLER_RETRIEZ", "7")
    with pytest.raises(SettingsError, match="CRAWLER_RETRIEZ"):
        build_settings(project_dir=tmp_path)


def test_cli_pair_without_equals(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["concurrency"])
    assert (err.name, err.source) == ("concurrency", "CLI -s")
    assert "name=value" in str(err)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = build_error(tmp_path, "log_level = 'INFO'\n\nconcurrency = = 3\n")
    path = (tmp_path / "settings.toml").resolve()
    assert str(path) in str(err)
    assert "line 3" in str(err)
    assert err.name == "concurrency"


def test_unreadable_settings_file(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_bytes(b"log_level = '\xff\xfe'\n")
    err = build_error(tmp_path)
    assert "settings.toml" in err.source
    assert "cannot read" in str(err)


def test_nested_wrong_type_names_the_dotted_setting(tmp_path: Path) -> None:
    err = build_error(tmp_path, env={"CRAWLER_CLOSE_ON__ITEMS": "many"})
    assert (err.name, err.source) == ("close_on.items", "environment CRAWLER_CLOSE_ON__ITEMS")
    err = build_error(tmp_path, "[close_on]\npages = -1\n")
    assert err.name == "close_on.pages"
    assert err.source.startswith("settings.toml")


def test_list_item_error_names_the_item(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["retry_http_codes=500,abc"])
    assert err.name == "retry_http_codes"
    assert "item 1: expected an integer, got 'abc'" in str(err)
    err = build_error(tmp_path, custom={"handle_status": [404, 700]})
    assert "item 1: must be <= 599" in str(err)


@pytest.mark.parametrize(
    ("pair", "name", "fragment"),
    [
        ("log_level=verbose", "log_level", "expected one of 'DEBUG'"),
        ("proxy=socks5://127.0.0.1:1080", "proxy", "http:// or https://"),
        ("proxy=http://", "proxy", "no host"),
        ("frontier_url=http://127.0.0.1", "frontier_url", "redis://"),
        ("pipelines=notapath", "pipelines", "not an import path"),
        ("middlewares=a.b:C,a b", "middlewares", "item 1"),
        ("spiders=my-spiders", "spiders", "not a package name"),
        ("timeout=0", "timeout", "must be > 0"),
        ("timeout=nan", "timeout", "finite"),
        ("close_on=5", "close_on", "expected a table"),
        ("retries=1.5", "retries", "expected an integer, got 1.5"),
    ],
)
def test_invalid_values(tmp_path: Path, pair: str, name: str, fragment: str) -> None:
    err = build_error(tmp_path, cli=[pair])
    assert (err.name, err.source) == (name, "CLI -s")
    assert fragment in str(err)


def test_valid_urls(tmp_path: Path) -> None:
    settings = build(
        tmp_path, cli=["frontier_url=rediss://h:6380/1", "proxy=https://user:pw@proxy.test:3128"]
    )
    assert settings.frontier_url == "rediss://h:6380/1"
    assert build(tmp_path, cli=["frontier_url=memory://"]).frontier_url == "memory://"
    sock = "unix:///run/redis/redis.sock"
    assert build(tmp_path, cli=[f"frontier_url={sock}"]).frontier_url == sock


def test_cross_field_retry_backoff(tmp_path: Path) -> None:
    err = build_error(tmp_path, "retry_backoff_max = 10\n", cli=["retry_backoff=20"])
    # The CLI set the later value, so the CLI is named.
    assert (err.name, err.source) == ("retry_backoff", "CLI -s")
    assert "retry_backoff_max (10.0) must be >= retry_backoff (20.0)" in str(err)


def test_cross_field_autothrottle_max_delay(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["autothrottle=true", "autothrottle_max_delay=1"],
                      custom={"download_delay": 2})
    assert (err.name, err.source) == ("autothrottle_max_delay", "CLI -s")
    # Without autothrottle the max delay is unused, so a long download_delay is fine.
    assert build(tmp_path, cli=["download_delay=120"]).download_delay == 120


def test_concurrency_per_host_above_concurrency_is_allowed(tmp_path: Path) -> None:
    settings = build(tmp_path, cli=["concurrency=2", "concurrency_per_host=8"])
    assert (settings.concurrency, settings.concurrency_per_host) == (2, 8)


def test_first_error_described_others_counted(tmp_path: Path) -> None:
    err = build_error(tmp_path, cli=["concurrency=0", "timeout=-1", "bogus=1"])
    assert err.name == "concurrency"
    assert "and 2 other errors" in str(err)
    assert "'timeout'" in str(err) and "'bogus'" in str(err)


# --- documentation ----------------------------------------------------------------------------


def test_every_field_has_a_description() -> None:
    for model in (Settings, CloseOn):
        docs = attribute_docs(model)
        for name in [f.name for f in dataclasses.fields(model) if f.init]:
            assert docs.get(name), f"{model.__name__}.{name} has no docstring"


def test_settings_table_lists_every_field() -> None:
    table = settings_table_markdown()
    lines = table.splitlines()
    assert lines[0] == "| name | default | description |"
    names = [line.split("|")[1].strip().strip("`") for line in lines[2:]]
    expected = [f.name for f in dataclasses.fields(Settings) if f.init] + [
        f"close_on.{f.name}" for f in dataclasses.fields(CloseOn)]
    assert sorted(names) == sorted(expected)
    row = next(line for line in lines if line.startswith("| `concurrency` "))
    assert "`64`" in row and "Global maximum of requests in flight" in row
    # Every row has exactly three cells, even with '|' inside a value or description.
    for line in lines:
        assert line.replace("\\|", "").count("|") == 4


def test_concurrency_has_an_upper_bound_named_with_its_source(tmp_path: Path) -> None:
    err = build_error(tmp_path, env={"CRAWLER_CONCURRENCY": "1000000000"})
    message = str(err)
    assert "concurrency" in message and "CRAWLER_CONCURRENCY" in message
    assert "100000" in message.replace(",", "").replace("_", "")
