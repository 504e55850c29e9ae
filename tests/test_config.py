"""Settings from TES_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tes_core.config import ConfigError, Settings


def test_defaults_make_an_embedded_server(tmp_path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    assert settings.database == f"sqlite:///{tmp_path / 'tes.sqlite3'}"
    assert settings.broker_url == ""
    assert settings.backend == "local"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.workdirs == tmp_path / "tasks"


def test_every_kind_of_value_is_parsed() -> None:
    settings = Settings.from_env(
        {
            "TES_DATA_DIR": "/srv/tes",
            "TES_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "TES_WORKER_THREADS": "3",
            "TES_RECONCILE_INTERVAL": "0.5",
            "TES_LOCAL_KEEP_WORKDIRS": "yes",
            "TES_DISABLED_PLUGINS": "cromwell, nextflow,,",
            "TES_UNRELATED": "x",
        }
    )
    assert settings.data_dir == Path("/srv/tes")
    assert settings.database == "postgresql+psycopg://u@h/db"
    assert settings.worker_threads == 3
    assert settings.reconcile_interval == 0.5
    assert settings.local_keep_workdirs is True
    assert settings.disabled_plugins == ("cromwell", "nextflow")


def test_overrides_win_over_the_environment(tmp_path) -> None:
    settings = Settings.from_env({"TES_DATA_DIR": "/elsewhere"}, data_dir=str(tmp_path))
    assert settings.data_dir == tmp_path


@pytest.mark.parametrize(
    ("name", "value"),
    [("TES_WORKER_THREADS", "many"), ("TES_LOCAL_KEEP_WORKDIRS", "perhaps"),
     ("TES_RECONCILE_INTERVAL", "soon")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
