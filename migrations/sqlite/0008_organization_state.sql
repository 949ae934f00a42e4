-- Organization state (issue #17): an operator may suspend an organization
-- with a reason; `suspended_at` (INTEGER milliseconds since the Unix epoch,
-- UTC) and `suspended_reason` are both set while it is suspended and both
-- NULL while it is active. Existing organizations are active (NULL).
--
-- The operator listing searches the canonical name by prefix as a range
-- `canonical_name >= ?fragment AND canonical_name < ?fragment || '~'` in
-- canonical-name order: the UNIQUE constraint of 0001 already keeps an index
-- on `canonical_name` (sqlite_autoindex_organizations_2), which serves that
-- range, so no second index is created here.
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

ALTER TABLE organizations ADD COLUMN suspended_at INTEGER;
ALTER TABLE organizations ADD COLUMN suspended_reason TEXT
    CHECK ((suspended_reason IS NULL) = (suspended_at IS NULL));

