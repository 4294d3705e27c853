-- pgbench script: one point lookup by primary key, a random existing key each time.
-- Run with -M prepared and -D rows=N. pgbench substitutes :k as the statement's
-- one parameter ($1, sent as text, type left to the server), so both servers
-- see `SELECT ... FROM users WHERE id = $1`: PostgreSQL answers from users_pkey,
-- ktable from its key index (and from its prepared fast path where it has one).
\set k random(0, :rows - 1)
SELECT name, email, age, city, score FROM users WHERE id = :k;
