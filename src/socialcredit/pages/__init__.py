"""The web pages: server-rendered Jinja over the same core as the API, every asset served by the app itself.

Pages: `/` dashboard, `/register`, `/blacklist/{city}` billboards, `/station/{city}` train-station monitors
(with their `/station/{city}.json` feed), `/citizens/{id}` (with `/login` and `/logout`), `/admin`, and
`/avatars/{id}.svg`. Everything works without JavaScript except the monitor's rotation and live refresh.

Cross-site request forgery: page forms carry no token because the key cookie is SameSite=Strict (and
HttpOnly); a browser does not send it with a request another site starts, so a forged form post arrives
without a key and is refused. See `pages.citizen`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from socialcredit.pages.render import HERE


def mount(app: FastAPI) -> None:
    """Add the page routes and `/static` to `app` (whose `state.service` is the running Service)."""
    from socialcredit.pages import admin, citizen, public

    for module in (public, citizen, admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


__all__ = ["mount"]
