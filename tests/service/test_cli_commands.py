"""`attencraft keys create|list|revoke`, `migrate` and the default tenant key of `attencraft serve`, in-process."""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from attencraft_cli.errors import CommandError
from attencraft_cli.main import main
from attencraft_cli.service_commands import (
    DATA_DIR_LOCK,
    announce_default_key,
    data_dir_lock,
    embedded_service,
    migrated_database,
)
from service.app import create_app
from service.auth import look_up_tenant
from service.db import create_db_engine, create_session_factory
from service.queue import RecordingJobQueue
from service.settings import Settings, get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("ATTENCRAFT_DATABASE_URL", "ATTENCRAFT_STORAGE_URL", "ATTENCRAFT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATTENCRAFT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def tenant_of(settings: Settings, key: str) -> str | None:
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            tenant = look_up_tenant(session, key)
    finally:
        engine.dispose()
    return tenant.name if tenant else None


def test_keys_create_prints_a_working_key(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "acme"]) == 0
    key = capsys.readouterr().out.strip()

    settings = Settings()
    assert settings.database_url == f"sqlite:///{data_dir / 'attencraft.db'}"
    assert key.startswith("ak_") and tenant_of(settings, key) == "acme"
    assert main(["keys", "create", "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.strip() != key


def test_keys_list_shows_prefixes_never_keys(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "create", "--tenant", "acme"])
    key = capsys.readouterr().out.strip()

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key not in listing
    assert re.search(rf"acme\s+{re.escape(key[:10])}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+-$", listing, re.M), listing


def test_a_revoked_key_is_refused_at_once_by_every_api_process(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["keys", "create", "--tenant", "acme"])
    key = capsys.readouterr().out.strip()
    settings = Settings()
    headers = {"Authorization": f"Bearer {key}"}
    apps = [create_app(settings, queue=RecordingJobQueue()) for _ in range(2)]  # two API processes, one database
    with TestClient(apps[0], headers=headers) as first, TestClient(apps[1], headers=headers) as second:
        assert first.get("/jobs").status_code == second.get("/jobs").status_code == 200

        assert main(["keys", "revoke", key[:10]]) == 0
        assert "Revoked key" in capsys.readouterr().out

        assert first.get("/jobs").status_code == second.get("/jobs").status_code == 401
    main(["keys", "list"])
    assert re.search(r"acme\s+\S+\s+\S+ \S+\s+\d{4}-", capsys.readouterr().out)


def test_revoking_an_unknown_key_is_one_sentence(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "revoke", "ak_nothing"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no key has the id or prefix 'ak_nothing'; see `attencraft keys list`."
    )


def test_serve_prints_the_default_key_once_and_restarts_keep_it(data_dir: Path) -> None:
    settings = Settings()
    with migrated_database(settings) as sessions:
        first = announce_default_key(sessions, settings)
        second = announce_default_key(sessions, settings)
    printed = re.search(r"shown only this once.*: (ak_\S+)$", first)
    assert printed, first
    assert "ak_" not in second and "printed at the first start" in second
    assert tenant_of(settings, printed.group(1)) == "default"


def test_serve_registers_the_configured_key(data_dir: Path) -> None:
    settings = Settings(api_key=SecretStr("ak_chosen-by-the-operator"))
    with migrated_database(settings) as sessions:
        assert "ATTENCRAFT_API_KEY" in announce_default_key(sessions, settings)
        assert "ATTENCRAFT_API_KEY" in announce_default_key(sessions, settings)  # idempotent
    assert tenant_of(settings, "ak_chosen-by-the-operator") == "default"


def test_migrate_creates_the_schema(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (data_dir / "attencraft.db").is_file()
    assert main(["migrate"]) == 0  # idempotent


def test_migrate_creates_missing_data_and_database_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATTENCRAFT_DATA_DIR", str(tmp_path / "not" / "yet"))
    monkeypatch.setenv("ATTENCRAFT_DATABASE_URL", f"sqlite:///{tmp_path / 'nor' / 'this' / 'attencraft.db'}")
    assert main(["migrate"]) == 0, capsys.readouterr().err
    assert (tmp_path / "not" / "yet").is_dir() and (tmp_path / "nor" / "this" / "attencraft.db").is_file()


def test_a_postgres_url_is_read_as_postgresql() -> None:
    engine = create_db_engine("postgres://user@127.0.0.1:5432/attencraft")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_a_second_server_on_a_data_directory_in_use_stops_before_writing_anything(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with data_dir_lock(Settings()):  # what a running `attencraft serve` holds
        assert main(["serve", "--model", "tiny", "--device", "cpu", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert f"(process {os.getpid()}) is using the data directory {data_dir.resolve()}" in error
    assert "--data-dir" in error and error.count("\n") == 1
    assert [path.name for path in data_dir.iterdir()] == [DATA_DIR_LOCK]  # no database, no store, no secret


def test_the_embedded_service_owns_its_data_directory_while_it_runs(data_dir: Path) -> None:
    settings = Settings(base_model="tiny", device="cpu")
    with (
        embedded_service(settings),
        pytest.raises(CommandError, match="is using the data directory"),
        data_dir_lock(settings),
    ):
        pass
    with data_dir_lock(settings):  # free again once it stopped
        pass
