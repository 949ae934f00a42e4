"""Invitations and password resets end to end through the generated client
and a real SMTP server: the service delivers the email, the test reads the
link's token from the delivered message (inbox.py) and posts it back as a
front end would."""

from __future__ import annotations

import uuid

from inbox import link_token, wait_for_message
from test_flow import PASSWORD, as_admin, assert_problem, check_tokens, client, create, login, unique  # noqa: F401

from orgsvc_client import Client
from orgsvc_client.api.admin import (
    admin_login,
    admin_refresh,
    confirm_password_reset,
    request_password_reset,
)
from orgsvc_client.api.admins import list_admins
from orgsvc_client.api.invitations import accept_invitation, create_invitation
from orgsvc_client.models import (
    AcceptedInvitation,
    AcceptInvitationRequest,
    AdminList,
    InvitationView,
    InviteRequest,
    LoginRequest,
    PasswordResetConfirmation,
    PasswordResetRequest,
    RefreshTokenRequest,
)

NEW_PASSWORD = "a brand new passphrase"


def test_invite_accept_then_log_in(client: Client) -> None:
    name = unique("Py Invites")
    owner_email = f"owner-{uuid.uuid4().hex[:10]}@mail-flow.example"
    invitee = f"invitee-{uuid.uuid4().hex[:10]}@mail-flow.example"
    assert create(client, name, owner_email).status_code == 201
    owner = login(client, owner_email)

    invited = create_invitation.sync_detailed(client=owner, body=InviteRequest(email=invitee))
    assert invited.status_code == 201, invited.content
    assert isinstance(invited.parsed, InvitationView)
    assert invited.parsed.status == "pending"
    assert invited.parsed.email == invitee

    message = wait_for_message(invitee, f"Invitation to join {name}")
    token = link_token(message)

    accepted = accept_invitation.sync_detailed(
        client=client, body=AcceptInvitationRequest(token=token, password=NEW_PASSWORD)
    )
    assert accepted.status_code == 201, accepted.content
    assert isinstance(accepted.parsed, AcceptedInvitation)
    assert accepted.parsed.admin.email == invitee
    assert accepted.parsed.admin.role == "admin"
    assert accepted.parsed.admin.email_verified is True

    # The invitee logs in with the password it chose; the link is spent.
    check_tokens(
        admin_login.sync_detailed(client=client, body=LoginRequest(email=invitee, password=NEW_PASSWORD))
    )
    again = accept_invitation.sync_detailed(
        client=client, body=AcceptInvitationRequest(token=token, password=NEW_PASSWORD)
    )
    assert_problem(again, 410, "invitation_unusable")

    admins = list_admins.sync_detailed(client=owner)
    assert isinstance(admins.parsed, AdminList)
    assert sorted(a.email for a in admins.parsed.admins) == sorted([owner_email, invitee])


def test_reset_confirm_then_old_tokens_fail(client: Client) -> None:
    email = f"reset-{uuid.uuid4().hex[:10]}@mail-flow.example"
    assert create(client, unique("Py Reset"), email).status_code == 201
    before = check_tokens(
        admin_login.sync_detailed(client=client, body=LoginRequest(email=email, password=PASSWORD))
    )

    requested = request_password_reset.sync_detailed(client=client, body=PasswordResetRequest(email=email))
    assert requested.status_code == 202, requested.content
    unknown = request_password_reset.sync_detailed(
        client=client, body=PasswordResetRequest(email=f"nobody-{uuid.uuid4().hex[:8]}@mail-flow.example")
    )
    assert unknown.status_code == 202 and unknown.content == requested.content

    token = link_token(wait_for_message(email, "Reset your password"))
    confirmed = confirm_password_reset.sync_detailed(
        client=client, body=PasswordResetConfirmation(token=token, password=NEW_PASSWORD)
    )
    assert confirmed.status_code == 204, confirmed.content

    # Every earlier token is dead; the new password works, the old one not.
    stale = admin_refresh.sync_detailed(client=client, body=RefreshTokenRequest(refresh_token=before.refresh_token))
    assert_problem(stale, 401, "invalid_refresh_token")
    old_access = list_admins.sync_detailed(client=as_admin(before))
    assert_problem(old_access, 401, "invalid_token")
    old_password = admin_login.sync_detailed(
        client=client, body=LoginRequest(email=email, password=PASSWORD)
    )
    assert_problem(old_password, 401, "invalid_credentials")
    check_tokens(admin_login.sync_detailed(client=client, body=LoginRequest(email=email, password=NEW_PASSWORD)))
    reused = confirm_password_reset.sync_detailed(
        client=client, body=PasswordResetConfirmation(token=token, password="yet another passphrase")
    )
    assert_problem(reused, 410, "account_token_unusable")
