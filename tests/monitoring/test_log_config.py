"""`serving_log:` in featurehub.yaml: one section for the server and the SDK; the old
`server.log_*` keys still work, with a warning that names their new place."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurehub.config import ServerConfig, ServingLogConfig, load_config
from featurehub.errors import ConfigError


def repo(root: Path, text: str) -> Path:
    (root / "featurehub.yaml").write_text("project: p\n" + text)
    return root


def test_the_serving_log_section(tmp_path: Path) -> None:
    config = load_config(
        repo(
            tmp_path,
            "serving_log:\n  root: /tmp/logs\n  sdk: true\n  sample_rates: {svc: 0.25}\n"
            "  flush_seconds: 2\n",
        )
    )
    settings = config.serving_log
    assert settings.sdk and settings.flush_seconds == 2
    assert settings.sample_rate_of("svc") == 0.25 and settings.sample_rate_of(None) == 1.0
    assert config.serving_log_root == Path("/tmp/logs")
    assert not load_config(repo(tmp_path, "")).serving_log.sdk  # off unless asked


def test_old_server_keys_still_work_with_a_warning(tmp_path: Path) -> None:
    text = "server:\n  log_root: old/logs\n  log_batch_rows: 7\n  log_sample_rates: {a: 0.5}\n"
    with pytest.warns(FutureWarning, match=r"server\.log_root -> serving_log\.root") as said:
        config = load_config(repo(tmp_path, text))
    assert any(str(w.message).startswith(str(tmp_path)) for w in said)  # names the file
    assert config.serving_log_root == tmp_path.resolve() / "old" / "logs"
    assert config.serving_log.batch_rows == 7 and config.serving_log.sample_rate_of("a") == 0.5
    with pytest.warns(FutureWarning, match="serving_log.flush_seconds"):
        server = ServerConfig(log_flush_seconds=3)
    assert server.log_settings(ServingLogConfig(root="r")).flush_seconds == 3
    assert ServerConfig().log_settings(ServingLogConfig(root="r")) == ServingLogConfig(root="r")


def test_a_setting_given_in_both_places_is_refused(tmp_path: Path) -> None:
    text = "server:\n  log_root: a\nserving_log:\n  root: b\n"
    with pytest.raises(ConfigError) as raised:
        load_config(repo(tmp_path, text))
    assert "server.log_root and serving_log.root are both set" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("serving_log:\n  flush_seconds: 0\n", "serving_log.flush_seconds"),
        ("serving_log:\n  sample_rates: {svc: 2}\n", "serving_log.sample_rates"),
        ("serving_log:\n  queue: 5\n", "serving_log.queue"),
    ],
)
def test_bad_settings_name_their_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        load_config(repo(tmp_path, text))
