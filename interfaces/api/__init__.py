"""The HTTP service: FastAPI app (`app`), routes, bearer-token auth, schemas, metrics, health checks.

`aiops serve` builds the app with `create_app()` and runs it under uvicorn; see `interfaces.api.app`.
"""
