-- Identity: staff accounts and their logins, short join links, revoked
-- links, the notification outbox, and the column that finds the
-- complaints against an ODR enterprise.

ALTER TABLE cases ADD COLUMN respondent_credit_code TEXT NOT NULL DEFAULT '';
UPDATE cases SET respondent_credit_code = coalesce(json_extract(doc, '$.respondent.creditCode'), '');
CREATE INDEX cases_respondent_created ON cases (respondent_credit_code, created_at, id)
    WHERE respondent_credit_code <> '';

CREATE TABLE staff_accounts (
    id                  TEXT PRIMARY KEY,
    login               TEXT NOT NULL UNIQUE,
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,
    institution_id      TEXT NOT NULL DEFAULT '',
    enterprise_code     TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    token_version       INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX staff_accounts_institution ON staff_accounts (institution_id, login);

-- A login: the family of refresh tokens rotated from it.
CREATE TABLE staff_sessions (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES staff_accounts (id),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX staff_sessions_account ON staff_sessions (account_id) WHERE revoked_at IS NULL;

-- Refresh tokens by the SHA-256 of their secret; the secret is not kept.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES staff_sessions (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Short join links by the SHA-256 of their code; the code is not kept.
CREATE TABLE join_links (
    id             TEXT PRIMARY KEY,
    code_hash      TEXT NOT NULL UNIQUE,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    participant_id TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX join_links_session ON join_links (session_id, created_at, id);

-- Revoked join links and tokens: of one jti, of a participant of a
-- session, or of a whole session.
CREATE TABLE revocations (
    key            TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    jti            TEXT NOT NULL DEFAULT '',
    case_id        TEXT NOT NULL DEFAULT '',
    session_id     TEXT NOT NULL DEFAULT '',
    participant_id TEXT NOT NULL DEFAULT '',
    reason         TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL,
    revoked_at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Notifications to deliver (pending) and delivered or given up.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    body            TEXT NOT NULL,
    case_id         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
) STRICT;

CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at, id) WHERE status = 'pending';
