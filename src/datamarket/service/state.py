"""What one app holds while it runs (:class:`ServiceState`, at ``app.state.service``): the database,
the adapters, the operator's key hash, the upload limits, the round runner, the auth throttle, the
formatter of amounts and the readiness (``/ready``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from datamarket.core.display import Formatter
from datamarket.service.adapters import Adapter, load_adapter
from datamarket.service.auth import hash_key
from datamarket.service.clearing.runner import RoundRunner
from datamarket.service.clearing.worker import WorkerPool
from datamarket.service.config import ServiceSettings
from datamarket.service.observability.readiness import Readiness
from datamarket.service.store.db import Database
from datamarket.service.throttle import AuthThrottle
from datamarket.service.uploads import UploadLimits


@dataclass
class ServiceState:
    """Everything the routes and pages share (one instance per app)."""

    db: Database
    adapters: dict[str, Adapter]
    refs: dict[str, str]
    admin_hash: str
    limits: UploadLimits
    runner: RoundRunner
    throttle: AuthThrottle
    display: Formatter
    readiness: Readiness

    @classmethod
    def build(cls, settings: ServiceSettings, engine: Engine) -> ServiceState:
        """The state of an app on ``engine`` (already migrated) configured by ``settings``."""
        key = settings.operator_key()
        db = Database.on(engine)
        refs = dict(settings.adapters)
        pool = WorkerPool(
            settings.executor, max_workers=settings.max_workers, dask_address=settings.dask_address
        )
        runner = RoundRunner(db, pool, refs, settings.limits, settings.leases)
        adapters = {k: load_adapter(r) for k, r in refs.items()}
        return cls(
            db,
            adapters,
            refs,
            hash_key(key),
            settings.limits,
            runner,
            settings.throttle.build(),
            settings.display,
            Readiness(engine),
        )
