"""idfsplade: inference-free learned sparse retrieval.

The package follows the pipeline: ``data`` → ``idf`` → ``model`` → ``train`` → ``index`` → ``search``
→ ``evaluate``, with a thin CLI (``idfsplade.cli``) and an HTTP service (``idfsplade.serve``) on top.
"""

from idfsplade.errors import IdfspladeError, InputError

__version__ = "0.1.0"
__all__ = ["IdfspladeError", "InputError", "__version__"]
