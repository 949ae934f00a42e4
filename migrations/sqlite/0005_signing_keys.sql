-- Access-token signing keys (issue #15): the key set every instance signs
-- and verifies with, published as a JWK Set.
--
-- The set is one versioned unit: `signing_key_set` holds its version (no
-- row: version 0, nothing stored yet) and a replace rewrites every row of
-- `signing_keys` and the version in one transaction, on the condition that
-- the version is still the one the writer read (compare-and-swap).
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC).
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

CREATE TABLE signing_key_set (
    -- Always 1: the set has one version.
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

CREATE TABLE signing_keys (
    kid                  TEXT    NOT NULL PRIMARY KEY,
    -- The key's place in the set, as the writer ordered it.
    position             INTEGER NOT NULL,
    algorithm            TEXT    NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256', 'RS256')),
    state                TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at           INTEGER NOT NULL,
    activated_at         INTEGER,
    retired_at           INTEGER,
    -- The public JWK members (kty, crv, x, y, n, e) as JSON.
    public_jwk           TEXT    NOT NULL,
    -- The private key encrypted by the service (AEAD): nonce and ciphertext.
    private_key_nonce    BLOB    NOT NULL,
    private_key_sealed   BLOB    NOT NULL
) STRICT, WITHOUT ROWID;

-- Never two active keys, never two next keys.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
