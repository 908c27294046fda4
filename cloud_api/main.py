"""The FastAPI application (composition root: `create_app` wires settings, database and adapters)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud_api import __version__
from cloud_api.adapters.payments import PaymentGateway
from cloud_api.api import errors
from cloud_api.api.routes import edge, gates, receipts, shoppers, staff
from cloud_api.console import routes as console
from cloud_api.core.config import Settings, load_settings
from cloud_api.core.ratelimit import RateLimits
from cloud_api.services.container import Container, build_container
from cloud_api.services.worker import Sweeper


def create_app(
    settings: Settings | None = None,
    gateway: PaymentGateway | None = None,
    container: Container | None = None,
    sweeper: bool = False,
) -> FastAPI:
    c = container or build_container(settings or load_settings(), gateway)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = Sweeper(c) if sweeper else None
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="Cashierless checkout cloud API",
        version=__version__,
        description="Check-in codes, visits, settlement, payments, receipts and disputes. "
        'Errors are JSON `{"message": ...}`; money is a decimal string; times are UTC nanoseconds.',
        lifespan=lifespan,
    )
    app.state.container = c
    errors.install(app)
    app.add_middleware(RateLimits, settings=c.settings, engine=c.engine, clock=lambda: c.now_ns() / 1e9)  # one clock
    for module in (gates, edge, shoppers, receipts, staff):
        app.include_router(module.router)
    console.install(app)  # the staff review console's pages (/console/)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and `cloud-api serve --workers N`: settings from the environment.
    Note: the test-mode payment processor keeps its state in each worker process."""
    return create_app(load_settings(), sweeper=True)
