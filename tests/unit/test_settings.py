from pathlib import Path

import pytest

from core.settings import SettingsError, known_env_names, load


def test_defaults_match_the_documented_interface():
    s = load(env={})
    assert (s.data_dir, s.host, s.http_port, s.smtp_port) == (Path("./data"), "127.0.0.1", 8080, 2525)
    assert s.effective_database_url.startswith("sqlite:///") and s.effective_database_url.endswith("data/switchboard.db")


def test_env_overrides_file_and_bare_urls_are_read(tmp_path):
    cfg = tmp_path / "sb.toml"
    cfg.write_text('smtp_port = 2600\nhttp_port = 9000\nlog_level = "debug"\n')
    s = load(env={"SWITCHBOARD_CONFIG": str(cfg), "SWITCHBOARD_HTTP_PORT": "9100",
                  "REDIS_URL": "redis://r:6379/0", "DATABASE_URL": "postgresql://db/x"})
    assert (s.smtp_port, s.http_port, s.log_level) == (2600, 9100, "debug")
    assert s.redis_url == "redis://r:6379/0" and s.effective_database_url == "postgresql://db/x"


def test_unknown_env_setting_is_an_error():
    with pytest.raises(SettingsError, match="SWITCHBOARD_SMTP_PROT"):
        load(env={"SWITCHBOARD_SMTP_PROT": "25"})


def test_unknown_file_key_is_an_error(tmp_path):
    cfg = tmp_path / "sb.toml"
    cfg.write_text("max_mesage_size = 1\n")
    with pytest.raises(SettingsError, match="max_mesage_size"):
        load(env={}, path=cfg)


def test_bad_value_names_setting_and_type():
    with pytest.raises(SettingsError, match="smtp_port: 'abc' is not a valid int"):
        load(env={"SWITCHBOARD_SMTP_PORT": "abc"})
    assert load(env={"SWITCHBOARD_DEMO": "off"}).demo is False


def test_known_env_names_cover_interface():
    assert {"SWITCHBOARD_DATA_DIR", "SWITCHBOARD_HTTP_PORT", "REDIS_URL", "DATABASE_URL"} <= known_env_names()
