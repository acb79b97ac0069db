-- The case lifecycle: columns to list and search cases, mediators, ODR
-- enterprises and idempotency keys.

ALTER TABLE cases ADD COLUMN category TEXT NOT NULL DEFAULT '';
-- due_at: when the case's pending deadline falls due (microseconds, UTC);
-- NULL when it runs against none.
ALTER TABLE cases ADD COLUMN due_at INTEGER;
UPDATE cases SET category = coalesce(json_extract(doc, '$.category'), '');

CREATE INDEX cases_created ON cases (created_at, id);
CREATE INDEX cases_state_created ON cases (state, created_at, id);
CREATE INDEX cases_institution_created ON cases (institution_id, created_at, id);
CREATE INDEX cases_category_created ON cases (category, created_at, id);
CREATE INDEX cases_due ON cases (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE mediators (
    id             TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    doc            TEXT NOT NULL
) STRICT;

CREATE INDEX mediators_institution ON mediators (institution_id, name, id);

CREATE TABLE enterprises (
    credit_code TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    case_id      TEXT NOT NULL DEFAULT '',
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;
