"""HTTP adapter (FastAPI): validate -> call library -> append to ledger -> respond."""
