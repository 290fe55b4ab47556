"""Baton's HTTP API (FastAPI). Run with `uvicorn api.main:app`."""
