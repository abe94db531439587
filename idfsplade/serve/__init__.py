"""The HTTP search service: an index loaded once, queried with no model call, behind FastAPI."""

from idfsplade.serve.app import create_app
from idfsplade.serve.limits import ServeLimits
from idfsplade.serve.loader import ServeConfig, app_from_env, load_app, resolve_source

__all__ = ["create_app", "ServeLimits", "ServeConfig", "app_from_env", "load_app", "resolve_source"]
