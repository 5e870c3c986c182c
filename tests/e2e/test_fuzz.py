"""Schemathesis over the whole OpenAPI, logged in: no input the schema allows (or nearly allows)
makes the server answer 5xx, and every answer matches the schema.

Bounded for CI by ``FUZZ_EXAMPLES`` examples per operation; raise it locally for a deeper run
(``COMMHUB_FUZZ_EXAMPLES=500 uv run pytest tests/e2e/test_fuzz.py``).
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.api_support import demo_login, serving_demo

FUZZ_EXAMPLES = int(os.environ.get("COMMHUB_FUZZ_EXAMPLES", "15"))
SPARED = ("/api/v1/auth/logout",)  # would revoke the token the rest of the run uses


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, server_url, session_kek) -> Iterator[tuple[str, str]]:
    with serving_demo(tmp_path_factory.mktemp("fuzz"), server_url, session_kek) as server:
        with demo_login(server) as owner:
            yield server.url, owner.token


def operations(url: str) -> list:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path not in SPARED]


def test_no_input_gets_a_server_error_and_answers_match_the_schema(fuzzed_server):
    url, token = fuzzed_server
    failures: list[str] = []
    tried = 0
    for operation in operations(url):
        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=15)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as error:  # collect every operation's failure, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:800]}")
        tried += 1
    assert tried >= 30, f"only {tried} operations found in the OpenAPI"
    assert not failures, "\n\n".join(failures)
