-- The master tables of the embedded store.
--
-- Ids are UUIDs as TEXT (hyphenated, lowercase); timestamps are INTEGER
-- milliseconds since the Unix epoch (UTC). Each organization's documents live
-- in their own table, org_<canonical name>, created by the store itself (not
-- by a migration) in the transaction that creates the organization.
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add 0002_<name>.sql instead.

CREATE TABLE organizations (
    id             TEXT    NOT NULL PRIMARY KEY,
    display_name   TEXT    NOT NULL,
    -- Decides uniqueness: lowercase, separators folded to one '_'.
    canonical_name TEXT    NOT NULL UNIQUE,
    -- The SQLite schema holding the tenant table: 'main', the store's file.
    database_name  TEXT    NOT NULL DEFAULT 'main',
    -- org_<canonical_name>.
    table_name     TEXT    NOT NULL UNIQUE,
    -- The founding admin; checked at commit, so organization and admin can
    -- be inserted in either order within one transaction.
    admin_id       TEXT    NOT NULL REFERENCES admins (id) DEFERRABLE INITIALLY DEFERRED,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE admins (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- Already normalised to lowercase by the service.
    email           TEXT    NOT NULL UNIQUE,
    -- PHC string.
    password_hash   TEXT    NOT NULL,
    token_version   INTEGER NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX admins_by_organization ON admins (organization_id);
