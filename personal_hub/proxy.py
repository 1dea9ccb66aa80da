"""The hub's view of configurable-http-proxy, also when the proxy runs on its own."""

from __future__ import annotations

from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback


class PersonalProxy(ConfigurableHTTPProxy):
    """ConfigurableHTTPProxy that keeps an external proxy's routes complete.

    A proxy the hub starts is watched by JupyterHub itself: restarted, and its routes
    restored, within `check_running_interval`. An external proxy (`should_start` off)
    is not: after it restarts it routes everything to the hub, so users' servers seem
    gone until the hub itself restarts. Here the hub checks an external proxy's routes
    every `check_running_interval` seconds too and puts back any that are missing.
    """

    _route_checks: PeriodicCallback | None = None

    async def check_routes(self, user_dict, service_dict, routes=None):
        await super().check_routes(user_dict, service_dict, routes)
        self.keep_checking_routes()

    def keep_checking_routes(self) -> None:
        if self.should_start or self._route_checks or self.check_running_interval <= 0:
            return
        self._route_checks = PeriodicCallback(self.restore_missing_routes,
                                              1e3 * self.check_running_interval)
        self._route_checks.start()

    async def restore_missing_routes(self) -> None:
        try:
            await self.check_routes(self.app.users, self.app._service_map)
        except Exception as error:  # the proxy is down or restarting: try again later
            self.log.warning("Could not check the proxy's routes: %s", error)
