-- Identity: staff accounts and their logins, short join links, revoked
-- links, the notification outbox, and the column that finds the
-- complaints against an ODR enterprise.

ALTER TABLE cases ADD COLUMN respondent_credit_code text NOT NULL DEFAULT '';
UPDATE cases SET respondent_credit_code = coalesce(doc->'respondent'->>'creditCode', '');
CREATE INDEX cases_respondent_created ON cases (respondent_credit_code, created_at, id)
    WHERE respondent_credit_code <> '';

CREATE TABLE staff_accounts (
    id                  text PRIMARY KEY,
    login               text NOT NULL UNIQUE,
    name                text NOT NULL,
    role                text NOT NULL,
    institution_id      text NOT NULL DEFAULT '',
    enterprise_code     text NOT NULL DEFAULT '',
    status              text NOT NULL,
    password_hash       text NOT NULL,
    token_version       bigint NOT NULL,
    password_changed_at timestamptz NOT NULL,
    version             bigint NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE INDEX staff_accounts_institution ON staff_accounts (institution_id, login);

-- A login: the family of refresh tokens rotated from it.
CREATE TABLE staff_sessions (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES staff_accounts (id),
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text NOT NULL DEFAULT ''
);

CREATE INDEX staff_sessions_account ON staff_sessions (account_id) WHERE revoked_at IS NULL;

-- Refresh tokens by the SHA-256 of their secret; the secret is not kept.
CREATE TABLE refresh_tokens (
    hash       text PRIMARY KEY,
    session_id text NOT NULL REFERENCES staff_sessions (id),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Short join links by the SHA-256 of their code; the code is not kept.
CREATE TABLE join_links (
    id             text PRIMARY KEY,
    code_hash      text NOT NULL UNIQUE,
    case_id        text NOT NULL REFERENCES cases (id),
    session_id     text NOT NULL REFERENCES sessions (id),
    participant_id text NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);

CREATE INDEX join_links_session ON join_links (session_id, created_at, id);

-- Revoked join links and tokens: of one jti, of a participant of a
-- session, or of a whole session.
CREATE TABLE revocations (
    key            text PRIMARY KEY,
    kind           text NOT NULL,
    jti            text NOT NULL DEFAULT '',
    case_id        text NOT NULL DEFAULT '',
    session_id     text NOT NULL DEFAULT '',
    participant_id text NOT NULL DEFAULT '',
    reason         text NOT NULL DEFAULT '',
    actor          text NOT NULL,
    revoked_at     timestamptz NOT NULL
);

-- Notifications to deliver (pending) and delivered or given up.
CREATE TABLE outbox (
    id              text PRIMARY KEY,
    channel         text NOT NULL,
    recipient       text NOT NULL,
    body            text NOT NULL,
    case_id         text NOT NULL DEFAULT '',
    status          text NOT NULL,
    attempts        integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at, id) WHERE status = 'pending';
