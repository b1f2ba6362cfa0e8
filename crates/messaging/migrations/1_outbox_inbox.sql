-- The outbox and the inbox every Choreo service database carries.
-- Versions below 1000 belong to choreo-messaging; services number theirs by
-- date, and both migrators ignore the other's rows in _sqlx_migrations.

-- Events a service has committed to publish, written in the same transaction
-- as the state change that caused them. The relay publishes rows in id order,
-- which keeps one order's events in order on its partition.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    -- Deterministic (derived from the cause), so re-handling a cause cannot
    -- enqueue the same event twice.
    event_id     UUID NOT NULL UNIQUE,
    topic        TEXT NOT NULL,   -- base name, e.g. order.events; the deployment prefix is added at publish time
    message_key  TEXT NOT NULL,   -- the order id
    record_name  TEXT NOT NULL,   -- full Avro name, e.g. io.choreo.events.OrderPlaced
    payload      BYTEA NOT NULL,  -- Avro binary datum, framed with the schema id at publish time
    traceparent  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Wakes the relay within milliseconds of a commit; the relay also polls, so
-- a lost notification only delays an event.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('choreo_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Events this service has applied, recorded in the same transaction as their
-- effect: a redelivered or replayed event finds its id here and is skipped.
CREATE TABLE inbox (
    event_id    UUID PRIMARY KEY,
    event_type  TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INT NOT NULL,
    "offset"    BIGINT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
