-- The registry's own database: schemas (global ids), the versions each
-- subject gives them, and compatibility levels.

-- A schema is stored once however many subjects use it, which is what makes
-- ids global: the same schema under two subjects has one id.
CREATE TABLE registry_schemas (
    id          INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_type TEXT        NOT NULL DEFAULT 'AVRO',
    -- The text as first registered, returned verbatim by the API.
    schema_text TEXT        NOT NULL,
    -- The parsed schema re-serialised by apache-avro (defaults and logical
    -- types kept), so that two texts differing only in whitespace or key
    -- order are one schema, while a changed default is a new one.
    normalized  TEXT        NOT NULL,
    -- sha256 of `normalized`, computed by the writer; `normalized` itself can
    -- be too long for a btree index.
    fingerprint BYTEA       NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE registry_subject_versions (
    subject    TEXT        NOT NULL,
    version    INTEGER     NOT NULL CHECK (version > 0),
    schema_id  INTEGER     NOT NULL REFERENCES registry_schemas (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version),
    -- Registering a schema a subject already has returns the existing version.
    UNIQUE (subject, schema_id)
);

-- Global level: at most one row; without it the configured default applies.
CREATE TABLE registry_global_config (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    compatibility TEXT    NOT NULL
);

-- Subject levels may be set before the subject has any version, as in Confluent.
CREATE TABLE registry_subject_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
