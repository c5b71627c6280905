"""Property-based requests generated from the server's own OpenAPI schema: never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serve.conftest import healthy, start


@pytest.fixture(scope="module")
def api_schema(serve_model):
    from sealion_vl.serve import ServeConfig, create_app

    # a short deadline bounds generations of any max_tokens the fuzzer picks
    app = create_app(serve_model("gemma3"), ServeConfig(api_key=None, request_timeout_s=2))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_yields_a_5xx(case):
    response = case.call()
    assert response.status_code < 500, (case.path, case.body, response.text[:500])
    if response.status_code >= 400:
        err = response.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]


def test_server_is_healthy_after_fuzzing(serve_model):
    s = start(serve_model("gemma3"))
    try:
        assert healthy(s)
    finally:
        s.stop()
