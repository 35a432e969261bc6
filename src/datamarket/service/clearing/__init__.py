"""Clearing rounds in the background, without FastAPI: :mod:`.leases` (the lease settings, this
process's instance id and the compare-and-set statements on a round), :mod:`.runner`
(:class:`~datamarket.service.clearing.runner.RoundRunner`: the claim loop, heartbeats, clearing and
booking, exactly once across processes) and :mod:`.worker` (the process, Dask or thread pool a
round's mechanism runs on, with its progress relay)."""
