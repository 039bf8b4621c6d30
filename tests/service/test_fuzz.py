"""schemathesis against the running receiver and the schema it publishes at /openapi.json.

The real service (listener, app, queue; no workers) on 127.0.0.1:0; every operation gets a
bounded number of generated requests, valid and invalid by the schema. Every answer must be
documented (status, headers, content type, body shape) and none may be a 5xx. Runs in CI with
the rest of the suite (marked integration, like the other tests that start a server).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tenancy_diag.service.app import Service, ServiceConfig
from tenancy_diag.service.limits import Limits

TOKEN = "fuzz-token"
#: Per operation and mode (three operations, valid and invalid data): well under a minute.
EXAMPLES = 80
pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    service = Service(
        ServiceConfig(
            listen="127.0.0.1:0",
            state_dir=root / "state",
            out=root / "out",
            token=TOKEN,
            workers=0,
            capacity=100_000,
            limits=Limits(body_deadline_s=2.0),
        )
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def published(receiver):
    return schemathesis.openapi.from_url(f"{receiver.url}/openapi.json")


# Operations named here rather than through schemathesis's pytest plugin (whose lazy
# parametrize needs pytest < 9); a test below checks that the list covers the schema.
OPERATIONS = [("/alerts", "POST"), ("/incidents", "POST"), ("/healthz", "GET")]


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [
        (*op, mode)
        for op in OPERATIONS
        for mode in GenerationMode
        if op[1] == "POST" or mode.value == "positive"
    ],
)
def test_every_answer_is_documented_and_none_is_a_server_error(published, path, method, mode):
    operation = published[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        # The same examples every run: CI's verdict must not depend on the draw.
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    fuzz()


def test_the_operations_fuzzed_are_all_the_schema_has(published):
    found = {(op.ok().path, op.ok().method.upper()) for op in published.get_all_operations()}
    assert found == set(OPERATIONS)
