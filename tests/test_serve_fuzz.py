"""The service under hostile input: schemathesis generates requests from the service's own OpenAPI
schema (valid ones and, for every field, invalid ones: wrong types, out-of-range numbers, odd
Unicode, missing fields) and checks every answer: no 5xx, status codes and bodies as documented,
invalid input rejected, valid input accepted."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (schemathesis brings hypothesis)

from idfsplade.serve import ServeConfig, ServeLimits, load_app  # noqa: E402

# Small limits, so the generator reaches them (and beyond) often.
LIMITS = ServeLimits(max_query_chars=200, max_k=30, max_batch=5, max_body_bytes=8192)


def _operations(adi_index):
    app = load_app(ServeConfig(adi_index, limits=LIMITS))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


# Plain hypothesis over each operation's strategy: schemathesis' pytest plugin (``@schema.parametrize``)
# does not run under pytest 9 (it reads a private ``_nodeid``).
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_service_answers_every_generated_request_as_documented(adi_index, mode):
    from hypothesis import given

    operations = _operations(adi_index)
    assert {f"{o.method.upper()} {o.path}" for o in operations} == {
        "GET /health", "GET /search", "POST /search", "POST /search/batch"}
    for operation in operations:
        if mode == "negative" and operation.path == "/health":
            continue  # no parameters and no body: nothing to make invalid
        strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

        @given(case=strategy)
        @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            case.call_and_validate()  # every default check, not_a_server_error among them

        check()
