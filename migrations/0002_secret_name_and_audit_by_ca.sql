-- Schema version 2.
--
-- * certificates.secret_name: the Secret the certificate was written to, so
--   `signet certs` can point at it after the Certificate object is gone.
-- * audit_log_by_ca / audit_log_by_namespace: `signet audit --ca NAME` and
--   `--namespace NS` filter on these columns together with time.
-- * mirror_state: key/value facts about the mirror itself (for example when it
--   was last rebuilt from the cluster).

ALTER TABLE certificates ADD COLUMN secret_name TEXT;

CREATE INDEX audit_log_by_ca        ON audit_log (ca, time_ms);
CREATE INDEX audit_log_by_namespace ON audit_log (object_namespace, time_ms);

CREATE TABLE mirror_state (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
