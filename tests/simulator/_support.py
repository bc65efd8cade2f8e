"""Small helpers for talking to the simulator with plain requests (verify= passed on every call)."""

from __future__ import annotations

import requests

from audit.simulator import Simulator


def token_response(sim: Simulator, tenant: dict, client: dict | None = None, **form) -> requests.Response:
    client = client or tenant["clients"][0]
    data = {
        "client_id": client["client_id"],
        "client_secret": client["secret"],
        "grant_type": "client_credentials",
        "scope": f"{sim.url}/.default",
        **form,
    }
    return requests.post(
        f"{sim.url}/{tenant['tenant_id']}/oauth2/v2.0/token", data=data, verify=sim.ca_path, timeout=10
    )


def token(sim: Simulator, tenant: dict, client: dict | None = None) -> str:
    response = token_response(sim, tenant, client)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Graph:
    """GET/POST against the simulator's /v1.0 with a bearer token."""

    def __init__(self, sim: Simulator, tenant: dict, client: dict | None = None, bearer: str | None = None):
        self.sim = sim
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {bearer or token(sim, tenant, client)}"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.sim.url}/v1.0{path}"

    def get(self, path: str, params: dict | None = None, headers: dict | None = None, **kw) -> requests.Response:
        return self.session.get(
            self.url(path), params=params, headers=headers, verify=self.sim.ca_path, timeout=30, **kw
        )

    def post(self, path: str, json=None, data=None, headers: dict | None = None) -> requests.Response:
        return self.session.post(
            self.url(path), json=json, data=data, headers=headers, verify=self.sim.ca_path, timeout=30
        )

    def all_pages(self, path: str, params: dict | None = None) -> tuple[list[dict], int]:
        """Every item of a collection, following @odata.nextLink verbatim; also the number of pages."""
        items, pages, url = [], 0, path
        while url:
            response = self.get(url, params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["value"]
            pages += 1
            url, params = body.get("@odata.nextLink"), None
        return items, pages


def add_client(tenant: dict, roles: list[str], secret: str = "limited-secret") -> dict:
    """Register a second app in the tenant with the given application roles."""
    client = {
        "client_id": f"00000000-0000-4000-8000-{len(tenant['clients']):012d}",
        "secret": secret,
        "roles": roles,
    }
    tenant["clients"].append(client)
    return client


def kind(tenant: dict, predicate) -> dict:
    return next(u for u in tenant["users"] if predicate(u))
