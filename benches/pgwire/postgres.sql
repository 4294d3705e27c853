-- The PostgreSQL side of scripts/bench-pgwire.sh: the same columns as ktable.sql,
-- the key as a TEXT primary key. Loaded with COPY, then VACUUM ANALYZE.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    age INT,
    city TEXT,
    score DOUBLE PRECISION
);
