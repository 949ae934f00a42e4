"""Schemathesis hooks for orgsvc (loaded through SCHEMATHESIS_HOOKS).

Authentication: every operation the document marks with a security
requirement gets a bearer token: the operator routes a read-scope operator
key, the others an admin's access token.
- `updateOrganization` and `deleteOrganization` change or delete the caller's
  own organization (a fuzzed update may change the password, which revokes
  the token): each of their test cases runs as an organization created for
  it, so no case depends on what an earlier one did. When a deletion names an
  organization that is still free, it is created under that name, so
  deletions reach their success path instead of only ever answering 403.
- Every other protected operation runs as one organization created for the
  whole run, which those two operations never touch, so resources created by
  one call can be found by the next (stateful tests).

`adminRefresh` and `adminLogout` are public. A fuzzed refresh token is unknown
(401 `invalid_refresh_token`; 204 for a logout), so every other positive
`adminRefresh` case gets a real, unused refresh token of the shared admin
instead (`before_call`), and its success answer is checked too. Fuzzed logins that repeat an email may lock it
(429 `login_locked`, documented); the hooks' own admins use fresh emails. The
harness lifts the per-IP login rate limit, since every case comes from
127.0.0.1.

The service's base URL comes from ORGSVC_FUZZ_URL.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import urllib.error
import urllib.request
import uuid

import schemathesis


def _tolerate_lambda_description_failures() -> None:
    """Works around a CPython 3.11 bug in the fuzzer's own machinery.

    Hypothesis names each filter lambda, for its reprs, by parsing the
    lambda's source file (`hypothesis.internal.lambda_sources`). For
    schemathesis' coverage module (~5,000 lines) that parse can happen deep
    in a recursive walk of a schema, where CPython 3.11's parser raises
    `SystemError: AST constructor recursion depth mismatch` (seen on the
    path parameter of `resendInvitation`), which schemathesis reports as a
    runtime error of the operation. The name is only cosmetic: on that
    error, the lambda is described as Hypothesis does when it cannot find
    the source.
    """
    try:
        from hypothesis.internal import lambda_sources
    except ImportError:  # another Hypothesis layout: nothing to patch
        return
    describe = lambda_sources._lambda_description

    def tolerant(f):
        try:
            return describe(f)
        except SystemError:
            return "lambda: <unknown>"

    lambda_sources._lambda_description = tolerant


_tolerate_lambda_description_failures()

BASE_URL = os.environ["ORGSVC_FUZZ_URL"].rstrip("/")
# Made by scripts/lib/api-harness.sh with `orgsvc operator-keys create`.
OPERATOR_READ_KEY = os.environ["ORGSVC_TEST_OPERATOR_READ_KEY"]
PASSWORD = "fuzzing password 1"
DESTRUCTIVE = {"updateOrganization", "deleteOrganization"}
# The documented organization_name pattern, without surrounding whitespace.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,62}[A-Za-z0-9]")

_counter = itertools.count()
_lock = threading.Lock()
_shared_token: str | None = None
_shared_email: str | None = None
_refresh_cases = itertools.count()


def _post(path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        BASE_URL + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _create(name: str, email: str) -> bool:
    status, body = _post(
        "/org/create", {"organization_name": name, "email": email, "password": PASSWORD}
    )
    if status not in (201, 409):
        raise RuntimeError(f"creating the fuzzing organization failed: {status} {body}")
    return status == 201


def _named_by(case) -> str | None:
    """The organization name a case names, when it is a plain valid one."""
    for source in (case.query or {}, case.body if isinstance(case.body, dict) else {}):
        name = source.get("organization_name")
        if isinstance(name, str) and PLAIN_NAME.fullmatch(name.strip()):
            return name.strip()
    return None


def _login_tokens(email: str) -> dict:
    status, body = _post("/admin/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"logging in the fuzzing admin failed: {status} {body}")
    return body


def _login(email: str) -> str:
    return _login_tokens(email)["access_token"]


def _new_organization(named: str | None = None) -> str:
    """Creates an organization (under `named` when it is free); returns its admin's token."""
    with _lock:
        serial = next(_counter)
    unique = f"{uuid.uuid4().hex[:12]}{serial}"
    email = f"fuzz-{unique}@fuzz.example"
    if not (named and _create(named, email)):
        if not _create(f"fuzz {unique}", email):
            raise RuntimeError("a unique fuzzing organization name was taken")
    return _login(email)


def _shared() -> str:
    global _shared_token, _shared_email
    with _lock:
        if _shared_token is None:
            email = f"fuzz-shared-{uuid.uuid4().hex[:12]}@fuzz.example"
            if not _create(f"fuzz shared {uuid.uuid4().hex[:12]}", email):
                raise RuntimeError("the shared fuzzing organization name was taken")
            _shared_token = _login(email)
            _shared_email = email
        return _shared_token


def _fresh_refresh_token() -> str:
    """An unused refresh token of a new session of the shared admin."""
    _shared()
    assert _shared_email is not None
    return _login_tokens(_shared_email)["refresh_token"]


@schemathesis.auth(refresh_interval=None)
class OrganizationAuth:
    """A token for every operation that requires one (see the module's doc)."""

    def get(self, case, context):
        operation = context.operation.definition.raw
        if not operation.get("security"):
            return None
        if any("operator_key" in requirement for requirement in operation["security"]):
            # A read-scope operator key: reads are fuzzed through to their
            # answers, writes (suspend, resume, delete, key management) get
            # their documented 403 and change nothing the other cases use.
            return OPERATOR_READ_KEY
        operation_id = operation.get("operationId")
        if operation_id not in DESTRUCTIVE:
            return _shared()
        return _new_organization(_named_by(case) if operation_id == "deleteOrganization" else None)

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def filter_case(context, case):
    """Keeps schema-valid deletions that name an organization.

    `DELETE /org/delete` takes the organization's name from the query or,
    without it, from the body: one of the two is required, which OpenAPI
    cannot express (both are optional in the document, and a request with
    neither is answered 422 `validation_failed`, as documented). Positive
    cases with neither are outside the operation's contract and dropped;
    negative cases are all kept.
    """
    operation = context.operation
    if operation is None or operation.definition.raw.get("operationId") != "deleteOrganization":
        return True
    meta = case.meta
    if meta is not None and not meta.generation.mode.is_positive:
        return True
    return "organization_name" in (case.query or {}) or isinstance(case.body, dict)


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Gives every other positive `adminRefresh` case a valid refresh token."""
    operation = context.operation
    if operation is None or operation.definition.raw.get("operationId") != "adminRefresh":
        return
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    if next(_refresh_cases) % 2 == 0:
        case.body = {**case.body, "refresh_token": _fresh_refresh_token()}
