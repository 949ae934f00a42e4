"""HTTP calls to orgsvc instances (standard library only) and their tally.

Every request has a timeout and goes to 127.0.0.1. A request that gets no
HTTP answer at all (connection refused or reset, timeout: the instance was
killed or stopped) is an `Answer` with `status is None`: its outcome is
unknown, so callers keep it out of the acknowledged bookkeeping.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: The documented 503 that is an expected answer, not a fault: a document
#: write that met a rename in progress ("was not applied"). Every other 5xx
#: is a fault.
BUSY_CODES = {"organization_busy"}


@dataclass
class Answer:
    """What one request got back."""

    route: str
    instance: int
    status: int | None  # None: no answer (connection error or timeout)
    body: Any = None
    error: str = ""
    elapsed: float = 0.0
    started: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def not_applied(self) -> bool:
        """Answers that say the request had no effect although nothing was
        wrong with it: the documented busy 503, and 408 (the instance was
        paused while reading the request, whose handler then never ran)."""
        return self.outcome in ("503-busy", "408")

    @property
    def code(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("code", ""))
        return ""

    @property
    def outcome(self) -> str:
        """The class this answer is counted under."""
        if self.status is None:
            return "no-answer"
        if self.status == 503 and self.code in BUSY_CODES:
            return "503-busy"
        if self.status == 408:
            return "408"
        if self.status >= 500:
            return "5xx"
        return f"{self.status // 100}xx"

    def describe(self) -> str:
        detail = self.body.get("detail", "") if isinstance(self.body, dict) else ""
        what = self.status if self.status is not None else f"no answer ({self.error})"
        return f"{self.route} on instance {self.instance}: {what} {self.code} {detail}".strip()


@dataclass
class Tally:
    """Thread-safe counts of answers per route and outcome, plus every fault
    (a 5xx other than the documented busy 503) in full."""

    counts: Counter = field(default_factory=Counter)
    faults: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.counts[(answer.route, answer.outcome)] += 1
            if answer.outcome == "5xx":
                self.faults.append(answer)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def outcome_total(self, outcome: str) -> int:
        with self.lock:
            return sum(n for (_, o), n in self.counts.items() if o == outcome)

    def table(self) -> str:
        outcomes = ["2xx", "3xx", "4xx", "408", "503-busy", "5xx", "no-answer"]
        with self.lock:
            routes = sorted({route for route, _ in self.counts})
            rows = [["route", *outcomes]]
            for route in routes:
                rows.append([route, *(str(self.counts[(route, o)]) for o in outcomes)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows
        )


class Api:
    """Calls to a set of instances, addressed by index; answers are tallied."""

    def __init__(self, ports: list[int], tally: Tally, timeout: float = 5.0):
        self.ports = ports
        self.tally = tally
        self.timeout = timeout

    def call(
        self,
        instance: int,
        method: str,
        path: str,
        route: str,
        body: Any = None,
        token: str | None = None,
        query: dict[str, str] | None = None,
        timeout: float | None = None,
        count: bool = True,
    ) -> Answer:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        headers = {"accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        started = time.monotonic()
        answer = Answer(route=route, instance=instance, status=None, started=started)
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[instance], timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            answer.status = response.status
            if raw:
                try:
                    answer.body = json.loads(raw)
                except ValueError:
                    answer.body = raw[:200].decode(errors="replace")
        except (OSError, http.client.HTTPException) as e:
            answer.error = type(e).__name__
        finally:
            conn.close()
        answer.elapsed = time.monotonic() - started
        if count:
            self.tally.add(answer)
        return answer

    # -- the calls the tests make -------------------------------------------

    def create_org(self, i: int, name: str, email: str, password: str, **kw: Any) -> Answer:
        body = {"organization_name": name, "email": email, "password": password}
        return self.call(i, "POST", "/org/create", "POST /org/create", body=body, **kw)

    def get_org(self, i: int, name: str, **kw: Any) -> Answer:
        return self.call(i, "GET", "/org/get", "GET /org/get", query={"organization_name": name}, **kw)

    def rename_org(self, i: int, token: str, new_name: str, **kw: Any) -> Answer:
        return self.call(i, "PUT", "/org/update", "PUT /org/update", body={"organization_name": new_name}, token=token, **kw)

    def delete_org(self, i: int, token: str, name: str, **kw: Any) -> Answer:
        return self.call(i, "DELETE", "/org/delete", "DELETE /org/delete", token=token, query={"organization_name": name}, **kw)

    def login(self, i: int, email: str, password: str, **kw: Any) -> Answer:
        return self.call(i, "POST", "/admin/login", "POST /admin/login", body={"email": email, "password": password}, **kw)

    def add_admin(self, i: int, token: str, email: str, password: str, role: str, **kw: Any) -> Answer:
        body = {"email": email, "password": password, "role": role}
        return self.call(i, "POST", "/org/admins", "POST /org/admins", body=body, token=token, **kw)

    def set_role(self, i: int, token: str, admin_id: str, role: str, **kw: Any) -> Answer:
        return self.call(i, "PATCH", f"/org/admins/{admin_id}", "PATCH /org/admins/{id}", body={"role": role}, token=token, **kw)

    def post_doc(self, i: int, token: str, body: dict, **kw: Any) -> Answer:
        return self.call(i, "POST", "/org/data", "POST /org/data", body=body, token=token, **kw)

    def put_doc(self, i: int, token: str, doc_id: str, body: dict, **kw: Any) -> Answer:
        return self.call(i, "PUT", f"/org/data/{doc_id}", "PUT /org/data/{id}", body=body, token=token, **kw)

    def delete_doc(self, i: int, token: str, doc_id: str, **kw: Any) -> Answer:
        return self.call(i, "DELETE", f"/org/data/{doc_id}", "DELETE /org/data/{id}", token=token, **kw)

    def get_doc(self, i: int, token: str, doc_id: str, **kw: Any) -> Answer:
        return self.call(i, "GET", f"/org/data/{doc_id}", "GET /org/data/{id}", token=token, **kw)

    def list_docs(self, i: int, token: str, max_pages: int = 1000, **kw: Any) -> dict[str, Any] | Answer:
        """Every document of the token's organization, `{id: body}`, or the
        first answer that was not a 200."""
        found: dict[str, Any] = {}
        after = None
        for _ in range(max_pages):
            query = {"limit": "100"}
            if after:
                query["after"] = after
            answer = self.call(i, "GET", "/org/data", "GET /org/data", token=token, query=query, **kw)
            if answer.status != 200:
                return answer
            for item in answer.body["items"]:
                found[item["id"]] = item["data"]
            after = answer.body.get("next_cursor")
            if not after:
                return found
        raise RuntimeError(f"listing did not end after {max_pages} pages")
