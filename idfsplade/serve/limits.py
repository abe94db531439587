"""The request limits of the search service, in one place so the schemas, the body-size guard, the
CLI and ``/health`` all agree on them.

Why limits at all: a query's cost grows with its number of unique tokens (each one gathers a postings
list), ``k`` sizes the response and the top-k selection, and a batch multiplies both. Bounding each keeps
one request from holding a worker for long, and the body-size cap stops a huge payload before any JSON
parsing happens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from idfsplade.errors import InputError


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for; anything beyond gets a 4xx and the service carries on."""

    max_query_chars: int = 4096
    max_k: int = 1000
    max_batch: int = 256
    # Below 1 MB on purpose: ~250 typical queries fit, a megabyte upload is refused before parsing.
    max_body_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
