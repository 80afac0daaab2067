"""The feature server: online feature values over HTTP, with metrics and a serving log.

`create_app(store)` builds the FastAPI app; `featurehub serve` or `uvicorn serving.app:app`
runs it. See docs/feature-server.md for the API.
"""

from featurehub.server.app import create_app

__all__ = ["create_app"]
