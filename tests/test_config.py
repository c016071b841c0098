"""Settings: defaults, file, environment and flags, in that order of precedence."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, Settings, load_settings, parse_nameserver


def test_defaults():
    s = load_settings([], environ={})
    assert s == Settings()
    assert s.timeout == 10.0 and s.max_redirects == 10 and s.max_batch == 1000
    assert s.max_request_bytes == 1024 * 1024 and s.nameservers == ()


def test_flags_beat_environment_beat_file(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text('timeout = 5.0\nca_file = "/from/file.pem"\nmax_batch = 10\nnameservers = ["192.0.2.1"]\n')
    env = {"NETOPS_TIMEOUT": "6", "NETOPS_MAX_BATCH": "20"}
    s = load_settings(["--config", str(config), "--timeout", "7", "--nameserver", "127.0.0.1:5353"], environ=env)
    assert s.timeout == 7.0
    assert s.max_batch == 20
    assert s.ca_file == "/from/file.pem"
    assert s.nameservers == ("127.0.0.1:5353",)


def test_repeatable_flags_and_comma_lists():
    s = load_settings(["--allow-target", "127.0.0.0/8", "--allow-target", "10.0.0.0/8,::1/128"], environ={})
    assert s.allow_targets == ("127.0.0.0/8", "10.0.0.0/8", "::1/128")
    s = load_settings([], environ={"NETOPS_TRANSPORTS": "xmlrpc,thrift"})
    assert s.transports == ("xmlrpc", "thrift")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "0"], "setting timeout"),
        (["--timeout", "soon"], "setting timeout"),
        (["--nameserver", "dns.example"], "setting nameservers"),
        (["--allow-target", "10.0.0.0/33"], "setting allow_targets"),
        (["--xmlrpc-port", "70000"], "setting xmlrpc_port"),
        (["--transports", "smtp"], "setting transports"),
        (["--thrift-transport", "http"], "setting thrift_transport"),
    ],
)
def test_bad_values_name_the_setting(argv, message):
    with pytest.raises(ConfigError) as info:
        load_settings(argv, environ={})
    assert message in str(info.value)


def test_unknown_file_key_is_named(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text("timeout = 5\ntimout = 6\n")
    with pytest.raises(ConfigError, match="unknown setting 'timout'"):
        load_settings(["--config", str(config)], environ={})


def test_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(["--config", str(tmp_path / "missing.toml")], environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_nameserver_notation(text, expected):
    assert parse_nameserver(text) == expected


def test_every_transport_in_the_table_has_its_port_setting():
    from gateway.transports import TABLE

    fields = Settings.__dataclass_fields__
    for row in TABLE:
        assert fields[f"{row.name}_port"].default == row.default_port
    assert Settings().transports == tuple(row.name for row in TABLE)
