"""Both wire protocols are thin tables over one service layer, and the API document is true.

Every REST route and every Connect method name an RPC of the catalog, and through it the
one service method that implements it; the OpenAPI document covers exactly the REST routes.
"""

from __future__ import annotations

from collections import defaultdict

from app.services import catalog
from app.transports import connect, rest


def test_every_rpc_is_served_on_both_transports_by_the_same_service_method():
    by_rest = defaultdict(set)
    for route in rest.ROUTES:
        by_rest[route.rpc.name].add(route.rpc.impl)
    for rpc in catalog.RPCS:
        assert connect.METHODS[rpc.path] is rpc
        assert getattr(rpc.owner, rpc.impl.__name__) is rpc.impl
        assert by_rest[rpc.name] == {rpc.impl}, rpc.name


def test_the_v2beta_session_service_runs_the_v2_methods():
    for name in ("CreateSession", "SetSession", "GetSession", "ListSessions", "DeleteSession"):
        v2 = catalog.rpc(catalog.SESSION_V2, name)
        beta = catalog.rpc(catalog.SESSION_V2BETA, name)
        assert (beta.impl, beta.request, beta.response) == (v2.impl, v2.request, v2.response)


def test_served_and_unimplemented_methods_do_not_overlap():
    for service, names in catalog.UNIMPLEMENTED.items():
        for name in names:
            assert f"/{service}/{name}" not in connect.METHODS
    assert "ListUsers" in catalog.UNIMPLEMENTED[catalog.USER_V2]
    assert "StartIdentityProviderIntent" not in catalog.UNIMPLEMENTED[catalog.USER_V2]
    assert "RegisterPasskey" not in catalog.UNIMPLEMENTED[catalog.USER_V2]


async def test_openapi_documents_exactly_the_rest_routes(client):
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "*")
        and route.resource is not None
        and not route.resource.canonical.startswith("/zitadel.")
    }
    assert {(route.method, route.path) for route in rest.ROUTES} <= served
    assert served - documented == set()
    assert documented - served == set()
