-- The case lifecycle: columns to list and search cases, mediators, ODR
-- enterprises and idempotency keys.

ALTER TABLE cases ADD COLUMN category text NOT NULL DEFAULT '';
-- due_at: when the case's pending deadline falls due; NULL when it runs
-- against none.
ALTER TABLE cases ADD COLUMN due_at timestamptz;
UPDATE cases SET category = coalesce(doc->>'category', '');

CREATE INDEX cases_created ON cases (created_at, id);
CREATE INDEX cases_state_created ON cases (state, created_at, id);
CREATE INDEX cases_institution_created ON cases (institution_id, created_at, id);
CREATE INDEX cases_category_created ON cases (category, created_at, id);
CREATE INDEX cases_due ON cases (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE mediators (
    id             text PRIMARY KEY,
    institution_id text NOT NULL REFERENCES institutions (id),
    name           text NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL,
    doc            jsonb NOT NULL
);

CREATE INDEX mediators_institution ON mediators (institution_id, name, id);

CREATE TABLE enterprises (
    credit_code text PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    doc         jsonb NOT NULL
);

CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    case_id      text NOT NULL DEFAULT '',
    status       integer NOT NULL,
    response     bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
