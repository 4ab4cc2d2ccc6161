"""Schemathesis over the OpenAPI schema: no 5xx, and every response matches the schema.

Each operation gets a bounded number of generated examples (hypothesis, no deadline).
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app

EXAMPLES = 15


@pytest.fixture(scope="module")
def api_schema(served_index):
    # With a key set, generated POST /api/index requests get a (documented) 401 instead of
    # starting jobs on whatever folder a generated string happens to name.
    app = create_app(served_index["settings"].model_copy(update={"api_key": "not-for-generated-requests"}))
    with TestClient(app):  # runs the lifespan: the engine is loaded while the schema is exercised
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations():
    return ["GET /api/search", "GET /api/search/match", "POST /api/search/image", "GET /api/images",
            "GET /api/images/{image_id}", "GET /api/images/{image_id}/similar",
            "GET /api/images/{image_id}/explain",
            "GET /api/images/{image_id}/thumbnail",
            "GET /api/images/{image_id}/file", "POST /api/images/{image_id}/ask", "POST /api/index",
            "GET /api/jobs/{job_id}", "POST /api/index/scan", "GET /api/index/status",
            "GET /healthz", "GET /metrics", "GET /api/stats", "GET /api/duplicates",
            "GET /api/albums", "POST /api/albums", "GET /api/albums/{name}", "PATCH /api/albums/{name}",
            "DELETE /api/albums/{name}", "GET /api/albums/{name}/export"]


def test_schema_lists_every_operation(api_schema):
    found = {f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations()}
    assert found == set(_operations())


@pytest.mark.parametrize("name", _operations())
def test_operation_conforms(api_schema, name):
    method, path = name.split(" ")
    operation = api_schema[path][method]

    @given(operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)  # the same examples on every run: CI stays reproducible
    def check(case):
        # Every built-in check but "schema-valid data is accepted": the schema cannot say that
        # an upload must hold an image, or that a folder must exist, and 422 is right for those.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()


SURROGATE = "\udcff"  # a lone surrogate: valid in JSON text, not encodable as UTF-8


@pytest.mark.parametrize(("method", "url", "kwargs"), [
    ("get", "/api/search", {"params": {"q": "x", "after": "0001-01-01T00:00:00"}}),
    ("get", "/api/search", {"params": {"q": "x", "before": "0001-01-01T00:00:00"}}),
    ("get", "/api/search", {"params": {"q": "x", "after": "9999-12-31T23:59:59"}}),
    ("get", "/api/search", {"params": {"q": "x", "after": "2024-01-01T00:00:00+05:00"}}),
    ("post", "/api/images/2/ask", {"content": '{"question": "\\udcff"}'}),
    ("post", "/api/images/2/ask", {"content": '{"question": "what?", "history": '
                                              '[{"question": "\\udcff", "answer": "no"}]}'}),
    ("post", "/api/index", {"content": '{"paths": ["\\udcff"]}'}),
    ("post", "/api/index", {"content": '{"paths": ["/tmp/\\udcff"]}'}),
])
def test_inputs_that_once_gave_500s_get_a_reason(served_index, method, url, kwargs):
    """Each of these was a 500 (`year 0 is out of range`, a UnicodeEncodeError while the error
    response was written); now a 200 or a 4xx whose JSON says why, and never a 5xx."""
    kwargs.setdefault("headers", {"content-type": "application/json"})
    with TestClient(create_app(served_index["settings"])) as client:
        response = getattr(client, method)(url, **kwargs)
    assert response.status_code in (200, 422), response.text
    body = response.json()
    if response.status_code == 422:
        assert body["detail"]


def test_a_client_gone_before_the_response_is_not_counted_as_a_500():
    import asyncio

    from api.metrics import Metrics, RequestCounter

    async def app(scope, receive, send):  # the client disconnected: no response is sent
        await receive()

    async def receive():
        return {"type": "http.disconnect"}

    metrics = Metrics()
    counter = RequestCounter(app, metrics)
    asyncio.run(counter({"type": "http", "method": "GET", "path": "/api/search"}, receive, None))
    text = metrics.render().decode()
    assert 'status="499"' in text and 'status="500"' not in text
