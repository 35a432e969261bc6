"""Queries and state transitions of the service, without FastAPI: what the JSON API's routes and the
portal's pages both call, so that each rule (validation, ownership, idempotency, the locking around
rounds and exclusions) lives in one place.

Modules: :mod:`.db` (:class:`~datamarket.service.store.db.Database`: sessions and the write
discipline), :mod:`.errors` (what a request is refused for: not found, forbidden, conflict, too
large), :mod:`.rows` (fetching a row for a caller), :mod:`.idempotency` (the one idempotent replay),
:mod:`.participants`, :mod:`.markets`, :mod:`.submissions`, :mod:`.rounds` (open, retry, read),
:mod:`.receipts`, :mod:`.ledger` (reads). Functions return plain data shaped like the API's response
bodies (:mod:`datamarket.service.api.schemas`); bad input raises
:class:`~datamarket.core.errors.InvalidInputError`.
"""
