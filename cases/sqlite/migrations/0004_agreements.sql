-- Mediation agreements, the follow-ups of their terms, and the hash
-- chain of the case event log.

-- Each event holds the hash of the event before it and its own (see
-- cases/audit.go). Events written before this migration have '' in both
-- until the store chains them, in seq order, right after migrating.
ALTER TABLE case_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE case_events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE INDEX case_events_unchained ON case_events (case_id) WHERE hash = '';

CREATE TABLE agreements (
    id         TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    number     INTEGER NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX agreements_case_number ON agreements (case_id, number);

-- due_at: the end of the term's deadline day (microseconds, UTC).
CREATE TABLE follow_ups (
    id             TEXT PRIMARY KEY,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    agreement_id   TEXT NOT NULL REFERENCES agreements (id),
    institution_id TEXT NOT NULL DEFAULT '',
    mediator_id    TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    due_at         INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    doc            TEXT NOT NULL
) STRICT;

CREATE INDEX follow_ups_case ON follow_ups (case_id, due_at, id);
CREATE INDEX follow_ups_open ON follow_ups (due_at, id) WHERE status IN ('pending', 'not_performed');
