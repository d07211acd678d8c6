"""The Dask dashboard of a local cluster, loaded on its first visit, so that a run nobody watches never
imports bokeh (its module costs a noticeable start-up and a slower exit; figures in docs/benchmarks.md).

The loading itself (importing the dashboard, which is ``distributed``'s) is handed in by
:mod:`pipeline.backends.dask`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tornado import web


class LazyDashboard(web.Application):
    """Serves the scheduler's bokeh dashboard from its first visit on. Added to the scheduler's HTTP server,
    it answers the paths the server has no handler for: the first request loads the dashboard (in a thread, so
    the scheduler keeps serving), connects it, and redirects to the same address, which the dashboard then
    serves; after that it answers nothing.

    Args:
        scheduler: The ``distributed.Scheduler`` whose HTTP server serves the dashboard.
        connect: Imports the dashboard and connects it to ``scheduler`` (blocking; run in a thread).
    """

    def __init__(self, scheduler: Any, connect: Callable[[Any], None]) -> None:  # noqa: ANN401 - distributed's
        super().__init__([(r"/.*", _DashboardLoader, {"owner": self})])
        self.scheduler = scheduler
        self._connect = connect
        self.loading: asyncio.Future[None] | None = None
        self.connected = False

    def find_handler(self, request: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - tornado's types
        """Nothing once the dashboard is connected: the server's next application (the dashboard) answers."""
        return None if self.connected else super().find_handler(request, **kwargs)

    async def load(self) -> None:
        """Import and connect the dashboard once, however many first visits wait for it."""
        if self.loading is None:
            self.loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self.loading)

    async def _load(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._connect, self.scheduler)
        self.connected = True


class _DashboardLoader(web.RequestHandler):
    def initialize(self, owner: LazyDashboard) -> None:
        self.owner = owner

    async def get(self, *_args: str) -> None:
        try:
            await self.owner.load()
        except ImportError as exc:
            self.set_status(503)
            self.finish(f"the Dask dashboard cannot load ({exc}); install bokeh: pip install 'bokeh>=3.1'")
            return
        self.redirect(self.request.uri or "/status")
