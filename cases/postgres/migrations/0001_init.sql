-- Initial schema of the PostgreSQL case store.
--
-- Each row keeps its whole record as JSONB in doc; the other columns are
-- copies used for lookups, ordering and constraints. timestamptz keeps
-- microseconds, the precision the store promises.

CREATE TABLE institutions (
    id         text PRIMARY KEY,
    code       text NOT NULL DEFAULT '',
    name       text NOT NULL,
    level      text NOT NULL DEFAULT '',
    parent_id  text NOT NULL DEFAULT '',
    status     text NOT NULL,
    created_at timestamptz NOT NULL,
    doc        jsonb NOT NULL
);

CREATE INDEX institutions_parent ON institutions (parent_id);

CREATE TABLE cases (
    id             text PRIMARY KEY,
    number         text NOT NULL,
    institution_id text NOT NULL,
    state          text NOT NULL,
    channel        text NOT NULL,
    external_ref   text NOT NULL DEFAULT '',
    version        bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    doc            jsonb NOT NULL
);

CREATE UNIQUE INDEX cases_number ON cases (number) WHERE number <> '';
CREATE UNIQUE INDEX cases_external_ref ON cases (channel, external_ref) WHERE external_ref <> '';
CREATE INDEX cases_institution_state ON cases (institution_id, state);

CREATE TABLE case_seq (
    institution_id text NOT NULL,
    year           integer NOT NULL,
    last           bigint NOT NULL,
    PRIMARY KEY (institution_id, year)
);

CREATE TABLE sessions (
    id         text PRIMARY KEY,
    case_id    text NOT NULL REFERENCES cases (id),
    status     text NOT NULL,
    version    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    doc        jsonb NOT NULL
);

CREATE INDEX sessions_case ON sessions (case_id, created_at, id);

CREATE TABLE case_events (
    case_id text NOT NULL REFERENCES cases (id),
    seq     bigint NOT NULL,
    type    text NOT NULL,
    actor   text NOT NULL,
    at      timestamptz NOT NULL,
    payload jsonb,
    PRIMARY KEY (case_id, seq)
);
