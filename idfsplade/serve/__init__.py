"""The HTTP search service: an index loaded once, queried with no model call, behind FastAPI."""

from idfsplade.serve.app import create_app
from idfsplade.serve.limits import ServeLimits
from idfsplade.serve.loader import ServeConfig, app_from_env, load_app

__all__ = ["ServeConfig", "ServeLimits", "app_from_env", "create_app", "load_app"]
