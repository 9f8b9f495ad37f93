"""The admin dashboard under `/dashboard` (server-rendered Jinja2) and the API reference at `/docs`
(docs/DASHBOARD.md)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.dashboard import actions, pages, signin
from gateway.dashboard.render import STATIC

ROUTES: list[BaseRoute] = [
    Route("/dashboard", pages.overview, methods=["GET"]),
    Route("/dashboard/login", signin.login_form, methods=["GET"]),
    Route("/dashboard/login", signin.login, methods=["POST"]),
    Route("/dashboard/cases", pages.cases, methods=["GET"]),
    Route("/dashboard/cases.csv", pages.cases_csv, methods=["GET"]),
    Route("/dashboard/customers/{customer_id}", pages.customer, methods=["GET"]),
    Route("/dashboard/customers/{customer_id}/cases/{invoice_id}/{action}", actions.case_action, methods=["POST"]),
    Route("/dashboard/incidents", pages.incidents, methods=["GET"]),
    Route("/dashboard/deliveries", pages.deliveries, methods=["GET"]),
    Route("/dashboard/deliveries/{delivery_id:int}/replay", actions.replay, methods=["POST"]),
    Route("/dashboard/strategies", pages.strategies, methods=["GET"]),
    Route("/docs", pages.docs, methods=["GET"]),
    Mount("/dashboard/static", StaticFiles(directory=STATIC, check_dir=False), name="dashboard-static"),
]
