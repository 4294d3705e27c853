-- The ktable side of scripts/bench-pgwire.sh; the script replaces @TOPIC@ with
-- the topic it loaded (a new one each run).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    age INT,
    city TEXT,
    score DOUBLE
) WITH (topic = '@TOPIC@', format = 'json');
