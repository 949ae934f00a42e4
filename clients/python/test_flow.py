"""The whole organization flow through the Python client generated from
openapi.json by openapi-python-client (package `orgsvc_client`).

Run by scripts/clients-test, which generates the client, starts the service
and sets ORGSVC_URL and PYTHONPATH.
"""

from __future__ import annotations

import os
import uuid

import pytest

from orgsvc_client import AuthenticatedClient, Client
from orgsvc_client.api.admin import admin_login, admin_logout, admin_refresh
from orgsvc_client.api.data import list_documents
from orgsvc_client.api.organizations import (
    create_organization,
    delete_organization,
    get_organization,
    update_organization,
)
from orgsvc_client.models import (
    AccessToken,
    CreatedOrganization,
    CreateOrganizationRequest,
    DeletedOrganization,
    LoginRequest,
    OrganizationMetadata,
    Problem,
    RefreshTokenRequest,
    UpdateOrganizationRequest,
)

BASE_URL = os.environ["ORGSVC_URL"]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def client() -> Client:
    # An undocumented status raises instead of passing silently.
    return Client(base_url=BASE_URL, raise_on_unexpected_status=True)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def create(client: Client, name: str, email: str):
    return create_organization.sync_detailed(
        client=client,
        body=CreateOrganizationRequest(organization_name=name, email=email, password=PASSWORD),
    )


def check_tokens(response) -> AccessToken:
    """The tokens of a 200 login or refresh answer."""
    assert response.status_code == 200, response.content
    tokens = response.parsed
    assert isinstance(tokens, AccessToken)
    assert tokens.token_type == "bearer"
    assert tokens.expires_in > 0
    assert len(tokens.refresh_token) == 43
    assert tokens.refresh_expires_in > 0
    assert response.headers["cache-control"] == "no-store"
    return tokens


def login_tokens(client: Client, email: str, password: str = PASSWORD) -> AccessToken:
    response = admin_login.sync_detailed(
        client=client, body=LoginRequest(email=email, password=password)
    )
    return check_tokens(response)


def as_admin(tokens: AccessToken) -> AuthenticatedClient:
    return AuthenticatedClient(
        base_url=BASE_URL, token=tokens.access_token, raise_on_unexpected_status=True
    )


def login(client: Client, email: str, password: str = PASSWORD) -> AuthenticatedClient:
    return as_admin(login_tokens(client, email, password))


def refresh(client: Client, refresh_token: str):
    return admin_refresh.sync_detailed(
        client=client, body=RefreshTokenRequest(refresh_token=refresh_token)
    )


def assert_problem(response, status: int, code: str) -> Problem:
    assert response.status_code == status, response.content
    problem = response.parsed
    assert isinstance(problem, Problem), problem
    assert problem.status == status
    assert problem.code == code
    assert problem.type_ == f"urn:orgsvc:problem:{code}"
    return problem


def test_create_login_get_rename_delete(client: Client) -> None:
    name = unique("Py Flow")
    email = f"py-{uuid.uuid4().hex[:10]}@flow.example"

    created = create(client, name, email)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, CreatedOrganization)
    assert created.parsed.organization_name == name
    assert created.parsed.collection_name == "org_" + name.lower().replace(" ", "_")

    admin = login(client, email.upper())  # emails compare ignoring case

    fetched = get_organization.sync_detailed(client=client, organization_name=name)
    assert fetched.status_code == 200, fetched.content
    assert isinstance(fetched.parsed, OrganizationMetadata)
    assert fetched.parsed.id == created.parsed.id
    assert fetched.parsed.admin_id == created.parsed.admin_id

    new_name = unique("Py Renamed")
    renamed = update_organization.sync_detailed(
        client=admin, body=UpdateOrganizationRequest(organization_name=new_name)
    )
    assert renamed.status_code == 200, renamed.content
    assert isinstance(renamed.parsed, OrganizationMetadata)
    assert renamed.parsed.organization_name == new_name
    assert renamed.parsed.collection_name == "org_" + new_name.lower().replace(" ", "_")

    moved = get_organization.sync_detailed(client=client, organization_name=new_name)
    assert moved.status_code == 200, moved.content
    assert isinstance(moved.parsed, OrganizationMetadata)
    assert moved.parsed.id == created.parsed.id
    old = get_organization.sync_detailed(client=client, organization_name=name)
    assert_problem(old, 404, "organization_not_found")

    deleted = delete_organization.sync_detailed(client=admin, organization_name=new_name)
    assert deleted.status_code == 200, deleted.content
    assert isinstance(deleted.parsed, DeletedOrganization)
    assert deleted.parsed.deleted is True
    assert deleted.parsed.organization_name == new_name

    gone = get_organization.sync_detailed(client=client, organization_name=new_name)
    assert_problem(gone, 404, "organization_not_found")
    # The deleted organization's token is refused.
    refused = update_organization.sync_detailed(
        client=admin, body=UpdateOrganizationRequest(organization_name=name)
    )
    assert_problem(refused, 401, "invalid_token")


def test_duplicate_name_is_a_typed_409(client: Client) -> None:
    name = unique("Py Taken")
    assert create(client, name, f"a-{uuid.uuid4().hex[:10]}@flow.example").status_code == 201
    # Another spelling of the same name, with another email.
    duplicate = create(client, name.upper().replace(" ", "-"), f"b-{uuid.uuid4().hex[:10]}@flow.example")
    problem = assert_problem(duplicate, 409, "organization_name_taken")
    assert problem.title == "Organization name taken"


def test_invalid_input_lists_every_field(client: Client) -> None:
    response = create(client, "x", "not-an-email")
    problem = assert_problem(response, 422, "validation_failed")
    assert isinstance(problem.errors, list)
    assert sorted(error.field for error in problem.errors) == ["email", "organization_name"]


def test_protected_operations_need_a_token(client: Client) -> None:
    anonymous = AuthenticatedClient(base_url=BASE_URL, token="", prefix="", raise_on_unexpected_status=True)
    response = update_organization.sync_detailed(
        client=anonymous, body=UpdateOrganizationRequest(organization_name="Anything")
    )
    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_refresh_rotates_reuse_revokes_and_logout_ends_the_session(client: Client) -> None:
    email = f"py-{uuid.uuid4().hex[:10]}@flow.example"
    assert create(client, unique("Py Sessions"), email).status_code == 201

    first = login_tokens(client, email)
    rotated = check_tokens(refresh(client, first.refresh_token))
    assert rotated.refresh_token != first.refresh_token
    listed = list_documents.sync_detailed(client=as_admin(rotated))
    assert listed.status_code == 200, listed.content

    # Presenting the used token again revokes the whole session.
    assert_problem(refresh(client, first.refresh_token), 401, "invalid_refresh_token")
    assert_problem(refresh(client, rotated.refresh_token), 401, "invalid_refresh_token")

    # Logout revokes another session; repeating it is harmless.
    second = login_tokens(client, email)
    for _ in range(2):
        out = admin_logout.sync_detailed(
            client=client, body=RefreshTokenRequest(refresh_token=second.refresh_token)
        )
        assert out.status_code == 204, out.content
    assert_problem(refresh(client, second.refresh_token), 401, "invalid_refresh_token")
