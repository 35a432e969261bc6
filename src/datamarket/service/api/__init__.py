"""The JSON API: :mod:`.deps` (the service state and who is calling, as FastAPI dependencies),
:mod:`.schemas` (request and response bodies), :mod:`.body_limit` (the streaming body-size limit) and
:mod:`.routes` (one ``APIRouter`` per resource). Every route is a thin adapter: parse, call one
:mod:`~datamarket.service.store` function, return a schema."""
