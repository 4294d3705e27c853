-- Sources of the embedded demo cluster (`ktable serve` without --brokers).
-- With your own Kafka, pass your own DDL: `ktable serve --brokers ... --sql my.sql`.

-- One row per user: the latest profile; a tombstone deletes the user.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    age INT,
    city TEXT,
    _timestamp TIMESTAMP
) WITH (topic = 'users', format = 'json');

-- The orders of the last hour, as they arrive.
CREATE STREAM orders (
    order_id TEXT,
    user_id TEXT,
    amount DOUBLE,
    ts TIMESTAMP
) WITH (topic = 'orders', format = 'json', retention = '1h');
