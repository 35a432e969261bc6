"""The service's settings (one ``ServiceSettings``, the environment read in one place), the errors
invalid settings raise, and the one idempotent replay reading rows as both of its former copies wrote
them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datamarket.core.errors import ConfigurationError, InvalidInputError, LeaseSettingsError, UploadError
from datamarket.service.clearing.leases import Leases
from datamarket.service.config import ADMIN_ENV, DATABASE_ENV, ServiceSettings, database_url, parse_adapter
from datamarket.service.throttle import ThrottleSettings
from datamarket.service.uploads import UploadLimits, parse_dataset
from tests.service_support import ADMIN, db_url  # noqa: F401  (fixture)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_ENV, raising=False)
    monkeypatch.delenv(DATABASE_ENV, raising=False)


def test_from_env_reads_the_environment_then_the_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, "from-env")
    monkeypatch.setenv(DATABASE_ENV, "sqlite:///env.db")
    s = ServiceSettings.from_env(executor="thread", port=None, max_workers=None)
    assert (s.admin_key, s.database_url, s.executor) == ("from-env", "sqlite:///env.db", "thread")
    assert (s.port, s.max_workers, s.leases, s.throttle) == (8000, 2, Leases(), ThrottleSettings())
    assert ServiceSettings.from_env(admin_key="given", database_url="sqlite:///x.db").admin_key == "given"
    assert database_url(None) == "sqlite:///env.db" and database_url("sqlite:///y.db") == "sqlite:///y.db"
    assert "broker" in s.adapters  # the built-in kinds by default


def test_defaults_without_environment(no_env: None) -> None:
    s = ServiceSettings.from_env()
    assert (s.admin_key, s.database_url, s.executor) == (None, "sqlite:///datamarket.db", "process")
    with pytest.raises(ConfigurationError, match=r"^admin_key: pass admin_key or set \$DATAMARKET_ADMIN_KEY"):
        s.operator_key()


def test_invalid_settings_raise_configuration_errors() -> None:
    cases = [
        ({"executor": "fork"}, "executor: must be one of process, thread, dask"),
        ({"executor": "dask"}, "executor: 'dask' needs dask_address"),
        ({"max_workers": 0}, "max_workers: must be at least 1"),
        ({"port": 0}, "port: must be in 1..65535"),
        ({"adapters": {"mine": "no-colon"}}, "adapters: expected KIND -> module:attribute"),
        ({"admin_key": ""}, "admin_key: must not be empty"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            ServiceSettings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^colour: unknown setting"):
        ServiceSettings.from_env(colour="blue")
    with pytest.raises(ConfigurationError, match="throttle: auth throttle"):
        ThrottleSettings(window_s=0.0)
    with pytest.raises(ConfigurationError, match=r"^adapter: expected KIND=module:attribute"):
        parse_adapter("broker")
    for bad in ({"lease_s": 0.0}, {"lease_s": 1.0, "heartbeat_s": 2.0}, {"max_attempts": 0}):
        with pytest.raises(LeaseSettingsError):
            Leases(**bad)  # type: ignore[arg-type]
    assert issubclass(LeaseSettingsError, ConfigurationError)


def test_create_app_needs_an_admin_key(no_env: None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datamarket.service.app import create_app

    with pytest.raises(ConfigurationError, match="admin_key"):
        create_app(ServiceSettings(database_url=f"sqlite:///{tmp_path}/x.db", executor="thread"))


def test_serve_builds_its_settings_from_options_and_environment(no_env: None) -> None:
    from datamarket.service.commands import serve_settings

    options = {"database_url": "sqlite:///a.db", "executor": "thread", "port": None}
    s = serve_settings(options, {"lease_s": 5.0, "poll_s": None}, {"limit": 0}, ["mine=pkg.mod:ADAPTER"])
    assert s.admin_key is not None and s.admin_key.startswith("dm_admin_")  # made up, printed once
    assert (s.port, s.leases, s.throttle.limit) == (8000, Leases(lease_s=5.0), 0)
    assert s.adapters["mine"] == "pkg.mod:ADAPTER" and "broker" in s.adapters


def test_unreadable_uploads_are_upload_errors() -> None:
    with pytest.raises(UploadError, match=r"^file: column 'x' is not numeric \(row 1: 'a'\)$"):
        parse_dataset(b"x,label\na,0\n", "csv", limits=UploadLimits())
    with pytest.raises(UploadError, match=r"^file: 3 rows exceed the limit of 2$"):
        parse_dataset(b"x\n1\n2\n3\n", "csv", limits=UploadLimits(max_rows=2))
    assert issubclass(UploadError, InvalidInputError)  # answered 422, like every invalid input


# -- the one idempotent replay, on rows as the two former copies stored them ------------------------
@pytest.fixture
def keyed_rows(db_url: str) -> Iterator[tuple[object, int, int]]:  # noqa: F811
    """A database with a round opened under key ``r`` before migration 0002 (no request hash) and a
    submission stored under key ``s`` with its hash in the payload (as every version stored it)."""
    from datamarket.ledger import make_engine, upgrade
    from datamarket.ledger.models import Market, Participant, Round, Submission
    from datamarket.service.store.db import Database

    engine = make_engine(db_url)
    upgrade(engine)
    db = Database.on(engine)
    with db.write() as s:
        m = Market(kind="broker", params={}, scale=100, currency="USD")
        p = Participant(name="p", api_key_hash="a" * 64)
        s.add_all([m, p])
        s.flush()
        s.add(Round(market_id=m.id, seed=1, input_ids=[], seed_source="operator", idempotency_key="r"))
        payload = {"data": {"cost": 1.0}, "_request": "h" * 64}
        s.add(
            Submission(
                market_id=m.id,
                participant_id=p.id,
                kind="cost",
                payload=payload,
                content_hash="c" * 64,
                size_bytes=1,
                idempotency_key="s",
            )
        )
        mid, pid = m.id, p.id
    yield db, mid, pid
    engine.dispose()


def test_one_replay_reads_rows_of_both_former_copies(keyed_rows: tuple[object, int, int]) -> None:
    from datamarket.ledger.models import Round, Submission
    from datamarket.service.store.errors import Conflict
    from datamarket.service.store.idempotency import Keyed, find, stored_hash

    db, mid, pid = keyed_rows
    with db.read() as s:  # type: ignore[attr-defined]
        legacy = find(s, Keyed(Round, Round.market_id == mid, "r", "any-hash"))
        assert legacy is not None and stored_hash(legacy) is None  # a round without a hash: a replay
        scope = Submission.participant_id == pid
        sub = find(s, Keyed(Submission, scope, "s", "h" * 64))
        assert sub is not None and stored_hash(sub) == "h" * 64
        with pytest.raises(Conflict, match="Idempotency-Key already used with a different request"):
            find(s, Keyed(Submission, scope, "s", "0" * 64))
        assert find(s, Keyed(Submission, scope, "other", "h" * 64)) is None
        assert find(s, Keyed(Submission, scope, None, "h" * 64)) is None
