"""The operator API through the generated client: an operator key (made
with `orgsvc operator-keys create` before the service started, see
scripts/lib/api-harness.sh) lists organizations, suspends one (its admins
cannot log in), resumes it (they can again)."""

from __future__ import annotations

import os
import uuid

from test_flow import PASSWORD, assert_problem, check_tokens, client, create, unique  # noqa: F401

from orgsvc_client import AuthenticatedClient, Client
from orgsvc_client.api.admin import admin_login
from orgsvc_client.api.operator import (
    operator_get_organization,
    operator_list_organizations,
    operator_resume_organization,
    operator_suspend_organization,
)
from orgsvc_client.models import (
    LoginRequest,
    OperatorOrganizationView,
    OrganizationListPage,
    SuspendRequest,
)

OPERATOR_KEY = os.environ["ORGSVC_TEST_OPERATOR_KEY"]


def operator() -> AuthenticatedClient:
    return AuthenticatedClient(
        base_url=os.environ["ORGSVC_URL"], token=OPERATOR_KEY, raise_on_unexpected_status=True
    )


def test_list_suspend_login_refused_resume(client: Client) -> None:
    prefix = f"py-op-{uuid.uuid4().hex[:8]}"
    email = f"{prefix}@operator-flow.example"
    name = f"{prefix} Tenant"
    assert create(client, name, email).status_code == 201
    assert create(client, f"{prefix} Other", f"other-{email}").status_code == 201

    listed = operator_list_organizations.sync_detailed(client=operator(), q=prefix)
    assert listed.status_code == 200, listed.content
    assert isinstance(listed.parsed, OrganizationListPage)
    names = [item.organization_name for item in listed.parsed.items]
    assert names == sorted(names, key=str.lower) and len(names) == 2, names
    tenant = next(item for item in listed.parsed.items if item.organization_name == name)
    assert isinstance(tenant, OperatorOrganizationView)
    assert tenant.state == "active"

    suspended = operator_suspend_organization.sync_detailed(
        client=operator(), id=tenant.id, body=SuspendRequest(reason="unpaid invoice")
    )
    assert suspended.status_code == 200, suspended.content
    refused = admin_login.sync_detailed(client=client, body=LoginRequest(email=email, password=PASSWORD))
    assert_problem(refused, 403, "organization_suspended")
    details = operator_get_organization.sync_detailed(client=operator(), id=tenant.id)
    assert details.status_code == 200, details.content

    resumed = operator_resume_organization.sync_detailed(client=operator(), id=tenant.id)
    assert resumed.status_code == 200, resumed.content
    check_tokens(admin_login.sync_detailed(client=client, body=LoginRequest(email=email, password=PASSWORD)))


def test_an_admin_token_is_no_operator_key(client: Client) -> None:
    email = f"py-op-{uuid.uuid4().hex[:8]}@operator-flow.example"
    assert create(client, unique("Py Op"), email).status_code == 201
    tokens = check_tokens(admin_login.sync_detailed(client=client, body=LoginRequest(email=email, password=PASSWORD)))
    as_admin = AuthenticatedClient(
        base_url=os.environ["ORGSVC_URL"], token=tokens.access_token, raise_on_unexpected_status=True
    )
    refused = operator_list_organizations.sync_detailed(client=as_admin)
    assert refused.status_code == 401, refused.content
