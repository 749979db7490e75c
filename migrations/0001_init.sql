-- Signet SQLite mirror, schema version 1.
--
-- The cluster is the source of truth for desired state; these tables are a
-- queryable mirror plus the append-only audit trail. Private keys are never
-- stored here. Times are unix seconds (UTC) unless the column says otherwise.

CREATE TABLE certificate_authorities (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    uid             TEXT,
    kms_key_arn     TEXT,
    key_spec        TEXT,
    subject         TEXT,
    serial          TEXT,
    parent          TEXT,
    status          TEXT    NOT NULL
                    CHECK (status IN ('pending', 'active', 'expired', 'revoked', 'failed')),
    not_before      INTEGER,
    not_after       INTEGER,
    certificate_pem TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX certificate_authorities_by_serial ON certificate_authorities (serial);
CREATE INDEX certificate_authorities_by_status ON certificate_authorities (status);

CREATE TABLE certificates (
    id                INTEGER PRIMARY KEY,
    ca_id             INTEGER NOT NULL REFERENCES certificate_authorities (id),
    namespace         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    uid               TEXT    NOT NULL DEFAULT '',
    serial            TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    sans              TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(sans)),
    usages            TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(usages)),
    status            TEXT    NOT NULL
                      CHECK (status IN ('active', 'superseded', 'revoked', 'expired')),
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    revision          INTEGER NOT NULL DEFAULT 1,
    revoked_at        INTEGER,
    revocation_reason TEXT,
    certificate_pem   TEXT,
    issued_at         INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (ca_id, serial)
);
CREATE INDEX certificates_by_ca_status ON certificates (ca_id, status);
CREATE INDEX certificates_by_status    ON certificates (status);
CREATE INDEX certificates_by_serial    ON certificates (serial);
CREATE INDEX certificates_by_not_after ON certificates (not_after);
CREATE INDEX certificates_by_object    ON certificates (namespace, name);

CREATE TABLE crls (
    id            INTEGER PRIMARY KEY,
    ca_id         INTEGER NOT NULL REFERENCES certificate_authorities (id),
    crl_number    INTEGER NOT NULL,
    this_update   INTEGER NOT NULL,
    next_update   INTEGER NOT NULL,
    revoked_count INTEGER NOT NULL,
    der           BLOB    NOT NULL,
    published_at  INTEGER NOT NULL,
    UNIQUE (ca_id, crl_number)
);

-- Append-only, hash-chained audit trail. `hash` is hex SHA-256 over the
-- previous row's hash (32 zero bytes for the first row) followed by the
-- canonical encoding of this row (see src/store/audit.rs).
CREATE TABLE audit_log (
    id               INTEGER PRIMARY KEY,
    time_ms          INTEGER NOT NULL,
    actor            TEXT    NOT NULL,
    operation        TEXT    NOT NULL,
    object_kind      TEXT    NOT NULL,
    object_namespace TEXT,
    object_name      TEXT,
    object_uid       TEXT,
    ca               TEXT,
    serial           TEXT,
    outcome          TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    hash             TEXT    NOT NULL
);
CREATE INDEX audit_log_by_time      ON audit_log (time_ms);
CREATE INDEX audit_log_by_object    ON audit_log (object_kind, object_namespace, object_name);
CREATE INDEX audit_log_by_operation ON audit_log (operation, time_ms);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed');
END;
