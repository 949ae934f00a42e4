-- One table for the documents of every organization (issue #16), replacing
-- the table per organization (org_<canonical name>).
--
-- With a table per organization, every create, rename and delete changed the
-- schema, which every connection then parsed again whole: each of them cost
-- time in proportion to the number of organizations, and every connection
-- held every table's schema in memory. Here an organization's documents are
-- the rows with its id: create adds none, rename changes none (the
-- organization's logical collection, organizations.table_name, is only
-- metadata now), delete removes its rows.
--
-- The primary key (organization_id, id) finds a document and scopes every
-- statement to one organization; the listing index walks one organization's
-- documents in (created_at, id) order. Deleting an organization removes its
-- documents explicitly; the foreign key's cascade is the backstop.
--
-- Stores with tenant tables are not converted by this file: the store copies
-- them into a new file at open (sqlite-adapter's layout_upgrade.rs, linear
-- in organizations + documents) and records this migration there. Its step
-- refuses to run while a tenant table exists.
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

CREATE TABLE tenant_documents (
    organization_id TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- UUIDv7, hyphenated.
    id              TEXT    NOT NULL,
    -- The body as serde_json writes it (JSON text, the body's field order).
    doc             TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch (UTC).
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- 1, 2, ...: incremented by every replacement.
    revision        INTEGER NOT NULL CHECK (revision >= 1),
    PRIMARY KEY (organization_id, id)
) STRICT;

CREATE INDEX tenant_documents_listing ON tenant_documents (organization_id, created_at, id);

-- organizations.admin_id refers to admins(id) with a deferred foreign key,
-- which SQLite checks from the other side too: inserting an admin while the
-- new organization's reference is still outstanding (a create inserts the
-- organization first), and deleting admins (a delete cascades them), look up
-- the organizations naming that admin. Without this index each lookup read
-- every organization: creates and deletes slowed down as organizations
-- accumulated (1,101 creates/s with 1,000 organizations, 413/s with 10,000).
CREATE INDEX organizations_by_admin ON organizations (admin_id);
