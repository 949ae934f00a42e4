-- The email outbox and single-use account tokens (issue #14): password
-- reset and email verification tokens, stored by SHA-256 only, each
-- written in one transaction with the outbox message that carries it;
-- and `admins.email_verified`.
--
-- `outbox_messages.claimed_until` holds a sender's claim (NULL: none); a
-- claim whose time has passed may be taken again. Timestamps are INTEGER
-- milliseconds since the Unix epoch (UTC).
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

CREATE TABLE outbox_messages (
    id              TEXT    NOT NULL PRIMARY KEY,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    sent_at         INTEGER
) STRICT;

-- What a claim looks for: unsent messages by due time.
CREATE INDEX outbox_messages_due ON outbox_messages (next_attempt_at, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_messages_sent ON outbox_messages (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE account_tokens (
    -- SHA-256 of the token, hex.
    hash        TEXT    NOT NULL PRIMARY KEY,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    admin_id    TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    -- The message that carried it; deleted with the token once expired.
    message_id  TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- Whether the admin proved to receive mail at its email. Existing admins
-- were never checked: they start unverified, like new ones.
ALTER TABLE admins ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0
    CHECK (email_verified IN (0, 1));

CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);
CREATE INDEX account_tokens_message_id ON account_tokens (message_id);
