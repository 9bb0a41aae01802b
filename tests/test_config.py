from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lprmeta.config import Secret, load_config, parse_config
from lprmeta.errors import ConfigError

from .conftest import ROOT


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return [str(p) for p in info.value.problems]


def test_example_config_loads_and_points_at_loopback_only() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.cameras, "the example must show a camera"
    for cam in config.cameras:
        assert cam.host == "127.0.0.1"
        if cam.rtsp and cam.rtsp.url:
            assert "127.0.0.1" in cam.rtsp.url
    assert config.http is not None
    assert config.http.host == "127.0.0.1"


def test_defaults_and_types() -> None:
    config = parse_config(
        {
            "http": {"listen": "0.0.0.0:9000", "username": "u", "password": "p"},
            "cameras": [
                {"name": "a", "host": "127.0.0.1", "tcp": {"register": ["parking", "counting"]}},
                {"name": "b", "host": "127.0.0.1", "rtsp": {}, "http": {"fields": {"plate": "LP"}}},
            ],
        }
    )
    a, b = config.cameras
    assert a.tcp is not None and a.tcp.port == 5000 and a.tcp.register == ("parking", "counting")
    assert not a.tcp.register_all
    assert a.http.path == "/lpr/a" and not a.http.declared
    assert a.transports == {"tcp"}
    assert b.tcp is None and b.rtsp is not None and b.rtsp.url is None
    assert b.http.fields == {"plate": "LP"} and b.transports == {"rtsp", "http"}
    assert config.http is not None and (config.http.host, config.http.port) == ("0.0.0.0", 9000)


def test_every_problem_is_reported_with_its_key() -> None:
    got = problems(
        {
            "output": {"snapshot_dir": 5},
            "http": {"listen": "nohost", "username": "u"},
            "cameras": [
                {"name": "ok", "host": "127.0.0.1"},
                {"name": "b", "host": "127.0.0.1", "tcp": {"port": 70000, "register": ["nope"]}},
                {"name": "ok", "host": "", "rtsp": {"url": "http://x"}, "colour": 1},
            ],
            "hooks": [{"target": "not a target"}],
            "extra": 1,
        }
    )
    assert got == [
        "output.snapshot_dir: must be a string, not an integer",
        'http.listen: must be "HOST:PORT" with a port 1-65535',
        "http.password: username and password go together",
        "cameras[1].tcp.register: unknown feature 'nope'; use parking, counting, attributes, "
        'list, violation, general or "all"',
        "cameras[1].tcp.port: must be 1-65535",
        "cameras[2].host: is required",
        "cameras[2].rtsp.url: must start with rtsp:// or rtsps://",
        "cameras[2].colour: unknown key",
        'hooks[0].target: must look like "package.module:function"',
        "extra: unknown key",
        "cameras[2].name: duplicate of cameras[0]",
        "cameras[2].http.path: same path as cameras[0]",
    ]


def test_booleans_are_not_numbers() -> None:
    assert problems({"cameras": [{"name": "a", "host": "h", "http_port": True}]}) == [
        "cameras[0].http_port: must be an integer, not a boolean"
    ]


def test_secret_never_shows() -> None:
    config = parse_config(
        {"cameras": [{"name": "a", "host": "127.0.0.1", "password": "hunter2-secret"}]}
    )
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config.cameras[0])
    assert config.cameras[0].password.get() == "hunter2-secret"
    assert config.secrets() == ["hunter2-secret"]
    assert Secret("x") == Secret("x") and not Secret("")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[output\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_check_config_cli_exits_2_naming_each_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[cameras]]\nname = "gate-1"\nhost = "127.0.0.1"\npassword = "s3cret-pw"\n'
        "[cameras.tcp]\nport = 0\n"
        '[[cameras]]\nname = "gate 2"\nhost = "127.0.0.1"\n'
        '[[hooks]]\ntarget = "no_such_module_xyz:fn"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lprmeta", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "cameras[0].tcp.port: must be 1-65535" in proc.stderr
    assert "cameras[1].name: must be 1-64 letters" in proc.stderr
    assert "s3cret-pw" not in proc.stderr


def test_check_config_cli_imports_hooks(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[hooks]]\ntarget = "no_such_module_xyz:fn"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "lprmeta", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "hooks[0].target: cannot import 'no_such_module_xyz'" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "lprmeta", "check-config", str(ROOT / "config.example.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stderr and ok.stdout == ""


def test_integration_sections_are_validated_key_by_key() -> None:
    from lprmeta.config import parse_config

    data = {
        "lists": [
            {"name": "residents", "plates": ["AB1234"]},
            {"name": "residents", "file": "x"},
            {"name": "empty"},
        ],
        "hooks": [{"target": "a.b:c", "only_lists": ["nobody"]}],
        "mqtt": {
            "qos": 3,
            "pictures": "inline",
            "prefix": "a/#",
            "client_id": "a/b",
            "failover": ["127.0.0.1:1884", "nohost", "127.0.0.1:99999"],
        },
        "webhooks": [{"url": "ftp://x", "only_lists": ["residents"]}, {"url": "http://127.0.0.1/"}],
        "metrics": {"listen": "nonsense"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    keys = sorted(p.key for p in info.value.problems)
    assert keys == sorted(
        [
            "lists[1].name",  # duplicate
            "lists[2].plates",  # neither plates nor file
            "hooks[0].only_lists",  # no such list
            "mqtt.qos",
            "mqtt.pictures",
            "mqtt.prefix",
            "mqtt.client_id",
            "mqtt.failover[1]",
            "mqtt.failover[2]",
            "webhooks[0].url",
            "metrics.listen",
        ]
    )


def test_mqtt_failover_parsed() -> None:
    from lprmeta.config import parse_config

    cfg = parse_config({"mqtt": {"port": 1885, "failover": ["127.0.0.1:1884", "[::1]:1886"]}})
    assert cfg.mqtt is not None
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("127.0.0.1", 1885)
    assert cfg.mqtt.failover == (("127.0.0.1", 1884), ("::1", 1886))


def test_integration_secrets_are_redacted() -> None:
    from lprmeta.config import parse_config

    config = parse_config(
        {
            "mqtt": {"password": "mqtt-pw"},
            "webhooks": [
                {
                    "url": "http://127.0.0.1/",
                    "secret": "hmac-key",
                    "headers": {"Authorization": "Bearer tok"},
                }
            ],
        }
    )
    assert {"mqtt-pw", "hmac-key", "Bearer tok"} <= set(config.secrets())
    assert "hmac-key" not in repr(config)


def test_example_config_commented_options_are_valid_too() -> None:
    """Every `# key = value` and `# [section]` in the example, uncommented, still parses:
    what the example shows a user to switch on cannot rot."""
    import re
    import tomllib

    from lprmeta.config import parse_config

    text = (ROOT / "config.example.toml").read_text()
    enabled = re.sub(r"^(\s*)# (\[|[a-z_]+ = )", r"\1\2", text, flags=re.MULTILINE)
    assert enabled.count("[mqtt]") == 1 and "\n[[webhooks]]" in enabled
    config = parse_config(tomllib.loads(enabled))
    assert config.mqtt is not None and config.mqtt.host == "127.0.0.1"
    assert config.metrics is not None and config.metrics.host == "127.0.0.1"
    assert [w.url for w in config.webhooks] == ["http://127.0.0.1:9000/lpr"]
    assert [x.name for x in config.lists] == ["residents"]
    assert config.store.url is not None and config.store.max_pictures_bytes == 20 * 2**30
    assert config.api is not None and config.api.port == 8081
    assert config.mqtt.discovery


def test_url_credentials_are_secrets_and_ambiguous_auth_is_refused() -> None:
    from lprmeta.config import parse_config

    config = parse_config(
        {
            "webhooks": [{"url": "https://hook:Url-Pass%2F1@127.0.0.1/in"}],
            "cameras": [
                {
                    "name": "c",
                    "host": "127.0.0.1",
                    "rtsp": {"url": "rtsp://admin:Rtsp-Pass@127.0.0.1:8554/m"},
                }
            ],
        }
    )
    secrets = set(config.secrets())
    assert {"Url-Pass/1", "Url-Pass%2F1", "Rtsp-Pass"} <= secrets
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "webhooks": [
                    {
                        "url": "https://hook:pw@127.0.0.1/in",
                        "headers": {"authorization": "Bearer tok"},
                    }
                ]
            }
        )
    assert "webhooks[0].url" in str(err.value) and "ambiguous" in str(err.value)
    assert "pw@" not in str(err.value)


def test_http_budgets_are_configurable_and_checked() -> None:
    from lprmeta.config import parse_config

    cfg = parse_config({"http": {"max_connections": 10, "max_reads_per_address": 2}})
    assert cfg.http is not None and cfg.http.max_connections == 10
    assert cfg.http.max_connections_per_address == 256 and cfg.http.max_body_memory == 128 * 2**20
    with pytest.raises(ConfigError) as err:
        parse_config({"http": {"max_body": 2**20, "max_body_memory": 4096}})
    assert "http.max_body_memory" in str(err.value)


def test_an_empty_section_is_exactly_the_dataclass_defaults() -> None:
    """The parser states no default of its own (DEFAULT reads the dataclass), so the two
    cannot drift: an empty section parses to the dataclass built with no arguments."""
    from lprmeta.config import (
        BusConfig,
        HttpConfig,
        MetricsConfig,
        OutputConfig,
        RtspConfig,
        TcpConfig,
        parse_config,
    )

    cfg = parse_config(
        {
            "output": {},
            "bus": {},
            "http": {},
            "metrics": {},
            "cameras": [{"name": "c", "host": "127.0.0.1", "tcp": {}, "rtsp": {}}],
        }
    )
    assert cfg.output == OutputConfig()
    assert cfg.bus == BusConfig()
    assert cfg.http == HttpConfig()
    assert cfg.metrics == MetricsConfig()
    assert cfg.cameras[0].tcp == TcpConfig()
    assert cfg.cameras[0].rtsp == RtspConfig()


def test_host_port_is_parsed_one_way_everywhere() -> None:
    from lprmeta.config import host_port, parse_config

    assert host_port("127.0.0.1:8092") == ("127.0.0.1", 8092)
    assert host_port("[::1]:1883") == ("::1", 1883)
    assert host_port("127.0.0.1") is None and host_port("h:70000") is None
    with pytest.raises(ConfigError) as err:
        parse_config({"http": {"listen": "nope"}, "mqtt": {"failover": ["also-nope"]}})
    assert "http.listen" in str(err.value) and "mqtt.failover[0]" in str(err.value)


def test_store_is_on_by_default_and_reads_sizes_and_secrets() -> None:
    default = parse_config({})
    assert default.store.enabled
    assert default.store.url is None
    assert default.api is None
    cfg = parse_config(
        {
            "store": {
                "url": "postgresql://lpr:s3cret-pw@127.0.0.1:5432/lprmeta",
                "max_pictures_bytes": "20 GiB",
                "keep_days": 7,
                "keep_events_days": 90,
            },
            "api": {"listen": "127.0.0.1:8181", "token": "tok-secret"},
        }
    )
    assert cfg.store.max_pictures_bytes == 20 * 2**30
    assert cfg.api is not None
    assert cfg.api.port == 8181
    assert "s3cret-pw" in cfg.secrets()
    assert "tok-secret" in cfg.secrets()
    assert "s3cret-pw" not in repr(cfg)


def test_store_and_api_problems_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "store": {
                    "enabled": False,
                    "url": "mysql://x",
                    "max_pictures_bytes": "lots",
                    "keep_days": 30,
                    "keep_events_days": 10,
                    "colour": 1,
                },
                "api": {"password": "p"},
            }
        )
    keys = {p.key for p in err.value.problems}
    assert keys == {
        "store.url",
        "store.max_pictures_bytes",
        "store.keep_events_days",
        "store.colour",
        "api.username",
        "api",
    }


def test_a_list_limited_to_an_unknown_camera_and_bad_event_service_settings_are_named() -> None:
    found = problems(
        {
            "cameras": [{"name": "gate", "host": "127.0.0.1", "onvif_events": {"subscription": 1}}],
            "lists": [{"name": "vip", "plates": ["AB1"], "cameras": ["gate", "nope"]}],
        }
    )
    assert any("lists[0].cameras" in p and "'nope'" in p for p in found), found
    assert any("onvif_events.subscription" in p for p in found), found
    config = parse_config(
        {
            "cameras": [{"name": "gate", "host": "127.0.0.1", "onvif_events": {}}],
            "lists": [{"name": "vip", "plates": ["AB1"], "cameras": ["gate"]}],
        }
    )
    assert config.lists[0].cameras == ("gate",)
    assert config.cameras[0].transports == frozenset({"onvif"})
    assert config.cameras[0].onvif_events is not None
    assert config.cameras[0].onvif_events.subscription == 60.0
