-- The saga's flow as the dashboard draws it (GET /saga/flow) reads the
-- last minute of every order's timeline: by when the steps happened.
CREATE INDEX order_timeline_recent ON order_timeline (occurred_at);
