"""api/routing.APIRouter skips a router whose prefix the path lacks, and changes nothing else."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from api.routing import APIRouter, _route_path


def app() -> FastAPI:
    first, second, bare = APIRouter(prefix="/api/first"), APIRouter(prefix="/api/second"), APIRouter()

    @first.get("/{item}")
    def get_first(item: str) -> dict[str, str]:
        return {"router": "first", "item": item}

    @second.get("/{item}")
    def get_second(item: str) -> dict[str, str]:
        return {"router": "second", "item": item}

    @bare.get("/loose/{item}")
    def get_loose(item: str) -> dict[str, str]:
        return {"router": "bare", "item": item}

    application = FastAPI()
    for router in (first, second, bare):
        application.include_router(router)
    return application


def request(application: FastAPI, method: str, path: str, root_path: str = "") -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=application, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    return asyncio.run(send())


def test_each_path_reaches_its_routers_route_and_only_that():
    application = app()
    assert request(application, "GET", "/api/first/a").json() == {"router": "first", "item": "a"}
    assert request(application, "GET", "/api/second/b").json() == {"router": "second", "item": "b"}
    assert request(application, "GET", "/loose/c").json() == {"router": "bare", "item": "c"}
    assert request(application, "GET", "/api/third/d").status_code == 404


def test_a_known_path_with_another_method_is_still_405():
    assert request(app(), "DELETE", "/api/second/b").status_code == 405


def test_paths_are_matched_without_the_root_path_the_app_is_served_under():
    answer = request(app(), "GET", "/hub/api/second/b", root_path="/hub")
    assert answer.json() == {"router": "second", "item": "b"}
    assert _route_path({"path": "/hub/api/x", "root_path": "/hub"}) == "/api/x"
    assert _route_path({"path": "/hubbub/api/x", "root_path": "/hub"}) == "/hubbub/api/x"
    assert _route_path({"path": "/api/x", "root_path": ""}) == "/api/x"
