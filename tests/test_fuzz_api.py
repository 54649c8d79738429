"""Schema-driven fuzzing of the whole HTTP API (schemathesis, from the app's own OpenAPI document): no
generated request, valid or not, may get a 5xx. Runs in-process against a real Redis holding a day
of data and real store actors (Ray), so write routes go all the way to Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.analytics_data import store_config, store_day
from tests.analytics_ray import api_client, store_actors
from workloads.analytics.service import StoreAnalytics
from workloads.config import FleetConfig
from workloads.state.event_log import EventLog

pytestmark = pytest.mark.integration

STORES = ("FZ_A", "FZ_B")
FLEET = FleetConfig.model_validate({"stores": [
    store_config(sid, tz, camera=f"{sid}_C").model_dump(mode="json") for sid, tz in zip(STORES, ("UTC", "Asia/Kolkata"),
                                                                                         strict=True)]})
#: Examples per operation: ~11 operations, about a minute on a 2-core box.
EXAMPLES = 30
_CLIENT: dict[str, Any] = {}  #: the in-process API client of the running module


@pytest.fixture(scope="module")
def api_schema(ray_cluster, redis_url: str) -> Iterator[Any]:
    r = redis.Redis.from_url(redis_url)
    for store in FLEET.stores:
        events, sales = store_day(store.id, datetime(2026, 3, 3, 8, tzinfo=UTC), 60, seed=1, camera=store.cameras[0].id)
        EventLog(r).append(events)
        analytics = StoreAnalytics(r, store, FLEET.analytics)
        analytics.catch_up()
        analytics.record_transactions(sales)
    with store_actors(FLEET, redis_url):
        client = api_client(FLEET, redis_url)
        _CLIENT["api"] = client
        yield schemathesis.openapi.from_asgi("/openapi.json", client.app)
        _CLIENT.clear()


schema = schemathesis.pytest.from_fixture("api_schema")


def _aim_at_real_stores(case: Any) -> None:
    """Random store ids are almost always unknown (404); point about half the cases at stores with data."""
    params = case.path_parameters or {}
    if "store_id" in params and len(str(params["store_id"])) % 2 == 0:
        params["store_id"] = STORES[len(str(params["store_id"])) % 4 // 2]
    body = case.body if isinstance(case.body, dict) else {}
    for i, item in enumerate(body.get("events") or []):
        if isinstance(item, dict) and i % 2 == 0:
            item["store_id"] = STORES[i % 4 // 2]


def _send(client: Any, case: Any) -> Any:
    """Send the case with FastAPI's (httpx) TestClient. Schemathesis' own requests transport breaks here:
    grafana-client pulls urllib3-future, which replaces the `urllib3` package requests runs on."""
    kw = case.as_transport_kwargs(base_url="http://testserver")
    body: dict[str, Any] = {"json": kw["json"]} if "json" in kw else {"content": kw.get("data")}
    return client.request(kw["method"], kw["url"], headers=kw.get("headers"), params=kw.get("params"),
                          cookies=kw.get("cookies"), **body)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_request_gets_a_server_error(case) -> None:
    _aim_at_real_stores(case)
    response = _send(_CLIENT["api"], case)
    case.validate_response(response, checks=[not_a_server_error])
