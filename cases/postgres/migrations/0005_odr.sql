-- ODR reconciliation (the merchants' green channel), the dispatch routes
-- of the cases that leave it, mediators' shifts for the instant-mediation
-- queue, and the reminders of scheduled sessions.

-- One record per case that went through reconciliation.
CREATE TABLE odr_reconciliations (
    case_id         text PRIMARY KEY REFERENCES cases (id),
    enterprise_code text NOT NULL,
    status          text NOT NULL,
    open            boolean NOT NULL, -- while the stage runs
    started_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    doc             jsonb NOT NULL
);

CREATE INDEX odr_reconciliations_enterprise ON odr_reconciliations (enterprise_code, started_at, case_id);
CREATE INDEX odr_reconciliations_started ON odr_reconciliations (started_at, case_id);
CREATE INDEX odr_reconciliations_open ON odr_reconciliations (started_at, case_id) WHERE open;

-- Where a case leaving reconciliation goes, by category and district
-- ('' matches any).
CREATE TABLE odr_routes (
    id             text PRIMARY KEY,
    category       text NOT NULL,
    district       text NOT NULL,
    institution_id text NOT NULL REFERENCES institutions (id),
    doc            jsonb NOT NULL
);

CREATE TABLE mediator_shifts (
    id             text PRIMARY KEY,
    mediator_id    text NOT NULL REFERENCES mediators (id),
    institution_id text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    doc            jsonb NOT NULL
);

CREATE INDEX mediator_shifts_institution ON mediator_shifts (institution_id, ends_at);
CREATE INDEX mediator_shifts_mediator ON mediator_shifts (mediator_id, ends_at);

CREATE TABLE session_reminders (
    id         text PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id),
    status     text NOT NULL,
    due_at     timestamptz NOT NULL,
    doc        jsonb NOT NULL
);

CREATE INDEX session_reminders_session ON session_reminders (session_id, due_at, id);
CREATE INDEX session_reminders_due ON session_reminders (due_at, id) WHERE status = 'pending';
