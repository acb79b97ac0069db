-- Mediation agreements, the follow-ups of their terms, and the hash
-- chain of the case event log.

-- Each event holds the hash of the event before it and its own (see
-- cases/audit.go). Events written before this migration have '' in both
-- until the store chains them, in seq order, right after migrating.
ALTER TABLE case_events ADD COLUMN prev_hash text NOT NULL DEFAULT '';
ALTER TABLE case_events ADD COLUMN hash text NOT NULL DEFAULT '';
CREATE INDEX case_events_unchained ON case_events (case_id) WHERE hash = '';

CREATE TABLE agreements (
    id         text PRIMARY KEY,
    case_id    text NOT NULL REFERENCES cases (id),
    number     integer NOT NULL,
    status     text NOT NULL,
    version    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    doc        jsonb NOT NULL
);

CREATE UNIQUE INDEX agreements_case_number ON agreements (case_id, number);

-- due_at: the end of the term's deadline day.
CREATE TABLE follow_ups (
    id             text PRIMARY KEY,
    case_id        text NOT NULL REFERENCES cases (id),
    agreement_id   text NOT NULL REFERENCES agreements (id),
    institution_id text NOT NULL DEFAULT '',
    mediator_id    text NOT NULL DEFAULT '',
    status         text NOT NULL,
    due_at         timestamptz NOT NULL,
    version        bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    doc            jsonb NOT NULL
);

CREATE INDEX follow_ups_case ON follow_ups (case_id, due_at, id);
CREATE INDEX follow_ups_open ON follow_ups (due_at, id) WHERE status IN ('pending', 'not_performed');
