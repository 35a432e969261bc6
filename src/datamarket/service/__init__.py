"""The marketplace service, by role (FastAPI only in :mod:`.app`, :mod:`.errors`, :mod:`.api` and
:mod:`.portal`):

* :mod:`.app` -- ``create_app(settings)``: the FastAPI application;
* :mod:`.config` -- :class:`~datamarket.service.config.ServiceSettings` (the only reader of the
  environment);
* :mod:`.state` -- what one app holds while it runs;
* :mod:`.errors` -- errors as the HTTP API answers them, and their OpenAPI declarations;
* :mod:`.api` -- dependencies, schemas and one router per resource (thin: parse, call the store,
  return a schema);
* :mod:`.store` -- queries and state transitions (no FastAPI), the one idempotent replay;
* :mod:`.clearing` -- leases, the round runner, the worker pool;
* :mod:`.uploads` -- dataset uploads (CSV, NPZ, Parquet) within limits;
* :mod:`.adapters` -- one adapter per market kind;
* :mod:`.portal` -- the web pages (calling the store, not the API's handlers);
* :mod:`.auth`, :mod:`.throttle` -- API keys and the failed-authentication throttle;
* :mod:`.commands`, :mod:`.demo` -- the CLI's ``serve`` and ``ledger`` commands, and the demo.
"""
