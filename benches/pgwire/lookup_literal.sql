-- pgbench script for -M simple: one point lookup by primary key with the key as a
-- literal in the statement's text, as psql and BI tools send it. pgbench replaces
-- :k in the text before sending (in simple mode only), giving `id = '123'`.
\set k random(0, :rows - 1)
SELECT name, email, age, city, score FROM users WHERE id = ':k';
