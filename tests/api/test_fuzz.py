"""Requests built from the API's own OpenAPI document, with hostile values, never get a 500.

Every operation is called with bodies and query strings shaped like its schema but filled
with edge values — huge and negative numbers, non-numbers in decimal strings, naive and
out-of-range times, empty, long and non-ASCII text, wrong types, missing fields — and path
ids that exist (a customer, a product, a test clock) or do not, on SQLite and on
PostgreSQL (whose columns are narrower). Seeded, so a failure names a reproducible
request; Temporal is unreachable here, so 503 is an allowed answer.
"""

from __future__ import annotations

import random
from typing import Any

from fastapi.testclient import TestClient

SEEDS = (1, 2, 3)
REQUESTS_PER_SEED = 400

TEXT = [
    "",
    " ",
    "a" * 5000,
    "é€😀",
    "nul\x00inside",  # PostgreSQL cannot store U+0000
    "AA",  # a cursor decoding to U+0000
    "../../etc/passwd",
    "1e999999",
    "NaN",
    "-Infinity",
    "-0",
    "0.000000000000000000001",
    "99999999999999999999999999999999.99",
    "-1",
    "1.005",
    "EUR",
    "XXX",
    "eur",
    "2026-02-30",
    "2026-01-01T00:00:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "2026-01-01T00:00:00Z",
    "card_on_file",
    "admin",
]
INTEGERS = [0, -1, 1, 12, 2035, 2**31, 2**63, -(2**63), 10**40]
WRONG: list[Any] = [None, 1.5, "x", [], {}, True, 10**30]


class Generator:
    def __init__(self, spec: dict[str, Any], rng: random.Random) -> None:
        self.schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
        self.rng = rng

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema, rng = self._resolve(schema), self.rng
        if depth > 6:
            return None
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                return self.value(rng.choice(schema[key]), depth + 1)
        if rng.random() < 0.05:
            return rng.choice(WRONG)
        if "enum" in schema and rng.random() < 0.7:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            required = set(schema.get("required", []))
            return {
                name: self.value(sub, depth + 1)
                for name, sub in schema.get("properties", {}).items()
                if name in required or rng.random() < 0.6
            }
        if kind == "array":
            count = rng.choice([0, 1, 2, 3, 60])
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer":
            return rng.choice(INTEGERS)
        if kind == "number":
            return rng.choice([0, -1.5, 1e308, 0.1, 3])
        if kind == "boolean":
            return rng.choice([True, False])
        return rng.choice(TEXT if kind == "string" else [*TEXT, *INTEGERS])


def _existing_ids(client: TestClient) -> dict[str, str]:
    customer = client.post(
        "/v1/customers",
        json={
            "name": "Fuzz AG",
            "email": "ap@fuzz.example",
            "currency": "EUR",
            "credit_limit": "1000.00",
            "tax_rate": "0.19",
        },
    )
    product = client.post(
        "/v1/products",
        json={
            "sku": "FUZZ-1",
            "name": "Fuzz",
            "kind": "physical",
            "unit_price": "10.00",
            "currency": "EUR",
        },
    )
    clock = client.post("/v1/test-clocks", json={"frozen_time": "2026-01-01T00:00:00Z"})
    assert (customer.status_code, product.status_code, clock.status_code) == (201, 201, 201)
    return {
        "customer_id": customer.json()["id"],
        "sku": "FUZZ-1",
        "clock_id": clock.json()["id"],
    }


def test_no_request_shaped_by_the_openapi_document_gets_a_500(client_any_db: TestClient) -> None:
    client = client_any_db
    spec = client.get("/openapi.json").json()
    ids = _existing_ids(client)
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 40
    failures: list[str] = []
    for seed in SEEDS:
        rng = random.Random(seed)
        gen = Generator(spec, rng)
        for n in range(REQUESTS_PER_SEED):
            path, method, op = rng.choice(operations)
            url, params = path, {}
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    known = ids.get(p["name"])
                    value = known if known and rng.random() < 0.8 else rng.choice(TEXT[1:])
                    url = url.replace("{" + p["name"] + "}", value.replace("\x00", "%00"))
                elif p["in"] == "query" and rng.random() < 0.5:
                    value = gen.value(p.get("schema", {}))
                    if isinstance(value, str | int | bool):
                        params[p["name"]] = value
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {})).get(
                "schema"
            )
            body = gen.value(schema) if schema else None
            headers = {"Idempotency-Key": f"fuzz-{seed}-{n}"} if rng.random() < 0.3 else {}
            r = client.request(method.upper(), url, params=params, json=body, headers=headers)
            if r.status_code >= 500 and r.status_code != 503:
                request = f"{method.upper()} {url} {body!r:.300}"
                failures.append(f"seed {seed} #{n}: {request} -> {r.text}")
            elif r.status_code >= 400 and path.startswith("/v1/"):  # not /readyz's own body
                assert r.headers["content-type"].startswith("application/problem+json"), url
    assert not failures, "\n".join(failures)
