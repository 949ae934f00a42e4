-- Invitations (issue #14): an owner invites an email with a role; the
-- invitee accepts with the token from the email. The current token is
-- stored by SHA-256 only (`token_hash`, hex; a resend replaces it). Each
-- email sent for an invitation is an outbox message written in the same
-- transaction, marked with `outbox_messages.invitation_id` so that
-- deleting the invitation (with its organization, or purged long after it
-- expired) deletes its unsent messages.
--
-- Status is derived (see Invitation::status_at): `accepted_at`,
-- `revoked_at` and `expires_at`. Timestamps are INTEGER milliseconds since
-- the Unix epoch (UTC).
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

CREATE TABLE invitations (
    id                TEXT    NOT NULL PRIMARY KEY,
    organization_id   TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email             TEXT    NOT NULL,
    role              TEXT    NOT NULL CHECK (role IN ('owner', 'admin')),
    invited_by        TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    token_hash        TEXT    NOT NULL UNIQUE,
    accepted_at       INTEGER,
    accepted_admin_id TEXT,
    revoked_at        INTEGER,
    CHECK ((accepted_at IS NULL) = (accepted_admin_id IS NULL))
) STRICT;

-- The listing: one organization's, newest (largest id) first.
CREATE INDEX invitations_organization ON invitations (organization_id, id);
CREATE INDEX invitations_expires_at ON invitations (expires_at);

ALTER TABLE outbox_messages ADD COLUMN invitation_id TEXT;
CREATE INDEX outbox_messages_invitation ON outbox_messages (invitation_id)
    WHERE invitation_id IS NOT NULL;
