-- glue-customers schema. Applied at every start; every statement is idempotent.
-- To change it later: append a block guarded by the version it migrates from and
-- bump the version recorded at the end (service/db.py knows the expected version).

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- the log
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writer's transaction id: readers fence on it (see events/store.py).
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text NOT NULL,
    version         integer NOT NULL CHECK (version > 0),
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    schema_version  integer NOT NULL DEFAULT 1,
    payload         jsonb NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_global_order ON events (transaction_id, position);
CREATE INDEX IF NOT EXISTS events_type_order ON events (event_type, transaction_id, position);

CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- An append composed with its inline projection into one statement (events/statements.py)
-- calls this on the number of events written: none means the append's checks refused
-- it, and the error undoes the projection's writes made in the same statement.
CREATE OR REPLACE FUNCTION events_append_written(written bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF written = 0 THEN
        RAISE EXCEPTION 'the append was refused by its checks' USING ERRCODE = 'GE001';
    END IF;
    RETURN written;
END $$;

-- Per-stream data keys wrapped by the master key. A row whose key is NULL is a
-- tombstone: the stream was erased and may never get a new key.
CREATE TABLE IF NOT EXISTS data_keys (
    stream_id    text PRIMARY KEY,
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz
);

-- ---------------------------------------------------------------- subscribers
CREATE TABLE IF NOT EXISTS subscriber_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  xid8 NOT NULL DEFAULT '0'::xid8,
    position        bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS mail_deliveries (
    event_id      uuid PRIMARY KEY,
    kind          text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    delivered_at  timestamptz
);
-- Version 2: a mail the relay refused for good is given up, and why is kept here.
ALTER TABLE mail_deliveries ADD COLUMN IF NOT EXISTS failed_at timestamptz;
ALTER TABLE mail_deliveries ADD COLUMN IF NOT EXISTS failure text;

CREATE SEQUENCE IF NOT EXISTS customer_reference_seq;

-- ---------------------------------------------------------------- read models
-- Every table below is disposable: `python -m service replay` rebuilds it from
-- the log. Projectors never schema-qualify them, so a rebuild can project into
-- a scratch schema placed first on the search_path.

CREATE TABLE IF NOT EXISTS customers (
    customer_reference     text PRIMARY KEY,
    email                  text NOT NULL,
    salutation             text,
    first_name             text,
    last_name              text,
    gender                 text,
    date_of_birth          date,
    password_hash          text NOT NULL,
    registration_key_hash  bytea,
    confirmed_at           timestamptz,
    token_generation       integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS customers_registration_key
    ON customers (registration_key_hash) WHERE registration_key_hash IS NOT NULL;

-- Email reservation: the unique key is what makes registrations of one email
-- race-free across processes (written in the append transaction).
CREATE TABLE IF NOT EXISTS customer_emails (
    email_lower         text PRIMARY KEY,
    customer_reference  text NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS password_resets (
    key_hash            bytea PRIMARY KEY,
    customer_reference  text NOT NULL,
    expires_at          timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS password_resets_customer ON password_resets (customer_reference);

CREATE TABLE IF NOT EXISTS addresses (
    uuid                 uuid PRIMARY KEY,
    customer_reference   text NOT NULL,
    salutation           text,
    first_name           text,
    last_name            text,
    address1             text,
    address2             text,
    address3             text,
    zip_code             text,
    city                 text,
    iso2_code            text,
    company              text,
    phone                text,
    is_default_shipping  boolean NOT NULL DEFAULT false,
    is_default_billing   boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS addresses_customer ON addresses (customer_reference, created_at);

CREATE TABLE IF NOT EXISTS availability_subscriptions (
    subscription_key    text PRIMARY KEY,
    customer_reference  text,
    email               text NOT NULL,
    email_lower         text NOT NULL,
    sku                 text NOT NULL,
    locale_name         text NOT NULL,
    created_at          timestamptz NOT NULL,
    UNIQUE (email_lower, sku)
);
CREATE INDEX IF NOT EXISTS availability_subscriptions_customer
    ON availability_subscriptions (customer_reference, created_at);

-- ---------------------------------------------------------------- auth state
-- Not event-sourced: credentials state, not customer history.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash          bytea PRIMARY KEY,
    family_id           uuid NOT NULL,
    customer_reference  text NOT NULL,
    issued_at           timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    revoked_at          timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_customer ON refresh_tokens (customer_reference);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Unlogged: every login writes here (an attempt counts from its admission until its
-- password proved right), and no counter needs to outlive a crash; without WAL those
-- writes cost no log flush.
CREATE UNLOGGED TABLE IF NOT EXISTS login_failures (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject       text NOT NULL,   -- 'user:<sha256 of the lower-case username>' or 'addr:<client address>'
    failed_at     timestamptz NOT NULL
);
DO $$
BEGIN
    IF (SELECT relpersistence FROM pg_class WHERE oid = 'login_failures'::regclass) = 'p' THEN
        ALTER TABLE login_failures SET UNLOGGED;  -- made by schema version 1
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS login_failures_subject ON login_failures (subject, failed_at);

-- Admit a login attempt: NULL when a subject is blocked, else the ids of the rows that
-- count it. One attempt at a time per subject (the lock, held to the statement's end);
-- each query after the lock sees every attempt admitted before (a volatile function's
-- queries take fresh snapshots). One round trip, no explicit transaction.
CREATE OR REPLACE FUNCTION login_admit(
    subjects text[], since timestamptz, lim integer, blocked_since timestamptz, at timestamptz
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ticket bigint[];
BEGIN
    -- In key order, so two attempts sharing both subjects cannot deadlock.
    PERFORM pg_advisory_xact_lock(k)
    FROM (SELECT hashtextextended(s, 0) AS k FROM unnest(subjects) AS s ORDER BY k) AS ordered;
    IF EXISTS (
        SELECT 1 FROM login_failures
        WHERE subject = ANY (subjects) AND failed_at > since
        GROUP BY subject
        HAVING count(*) >= lim AND max(failed_at) > blocked_since
    ) THEN
        RETURN NULL;
    END IF;
    WITH counted AS (
        INSERT INTO login_failures (subject, failed_at) SELECT unnest(subjects), at RETURNING id
    )
    SELECT array_agg(id) INTO ticket FROM counted;
    RETURN ticket;
END $$;

INSERT INTO schema_migrations (version) VALUES (1), (2) ON CONFLICT DO NOTHING;
