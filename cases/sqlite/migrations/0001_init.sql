-- Initial schema of the embedded case store.
--
-- Times are INTEGER microseconds since the Unix epoch, UTC. Each row keeps
-- its whole record as JSON in doc; the other columns are copies used for
-- lookups, ordering and constraints.

CREATE TABLE institutions (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL,
    level      TEXT NOT NULL DEFAULT '',
    parent_id  TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;

CREATE INDEX institutions_parent ON institutions (parent_id);

CREATE TABLE cases (
    id             TEXT PRIMARY KEY,
    number         TEXT NOT NULL,
    institution_id TEXT NOT NULL,
    state          TEXT NOT NULL,
    channel        TEXT NOT NULL,
    external_ref   TEXT NOT NULL DEFAULT '',
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    doc            TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX cases_number ON cases (number) WHERE number <> '';
CREATE UNIQUE INDEX cases_external_ref ON cases (channel, external_ref) WHERE external_ref <> '';
CREATE INDEX cases_institution_state ON cases (institution_id, state);

CREATE TABLE case_seq (
    institution_id TEXT NOT NULL,
    year           INTEGER NOT NULL,
    last           INTEGER NOT NULL,
    PRIMARY KEY (institution_id, year)
) STRICT, WITHOUT ROWID;

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;

CREATE INDEX sessions_case ON sessions (case_id, created_at, id);

CREATE TABLE case_events (
    case_id TEXT NOT NULL REFERENCES cases (id),
    seq     INTEGER NOT NULL,
    type    TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    payload TEXT,
    PRIMARY KEY (case_id, seq)
) STRICT, WITHOUT ROWID;
