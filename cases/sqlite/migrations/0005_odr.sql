-- ODR reconciliation (the merchants' green channel), the dispatch routes
-- of the cases that leave it, mediators' shifts for the instant-mediation
-- queue, and the reminders of scheduled sessions.

-- One record per case that went through reconciliation.
CREATE TABLE odr_reconciliations (
    case_id         TEXT PRIMARY KEY REFERENCES cases (id),
    enterprise_code TEXT NOT NULL,
    status          TEXT NOT NULL,
    open            INTEGER NOT NULL, -- 1 while the stage runs
    started_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    doc             TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX odr_reconciliations_enterprise ON odr_reconciliations (enterprise_code, started_at, case_id);
CREATE INDEX odr_reconciliations_started ON odr_reconciliations (started_at, case_id);
CREATE INDEX odr_reconciliations_open ON odr_reconciliations (started_at, case_id) WHERE open = 1;

-- Where a case leaving reconciliation goes, by category and district
-- ('' matches any).
CREATE TABLE odr_routes (
    id             TEXT PRIMARY KEY,
    category       TEXT NOT NULL,
    district       TEXT NOT NULL,
    institution_id TEXT NOT NULL REFERENCES institutions (id),
    doc            TEXT NOT NULL
) STRICT;

CREATE TABLE mediator_shifts (
    id             TEXT PRIMARY KEY,
    mediator_id    TEXT NOT NULL REFERENCES mediators (id),
    institution_id TEXT NOT NULL,
    starts_at      INTEGER NOT NULL,
    ends_at        INTEGER NOT NULL,
    doc            TEXT NOT NULL
) STRICT;

CREATE INDEX mediator_shifts_institution ON mediator_shifts (institution_id, ends_at);
CREATE INDEX mediator_shifts_mediator ON mediator_shifts (mediator_id, ends_at);

CREATE TABLE session_reminders (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    status     TEXT NOT NULL,
    due_at     INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;

CREATE INDEX session_reminders_session ON session_reminders (session_id, due_at, id);
CREATE INDEX session_reminders_due ON session_reminders (due_at, id) WHERE status = 'pending';
