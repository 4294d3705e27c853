-- pgbench script: a full scan of the table grouped into 20 cities.
SELECT city, count(*), avg(age), sum(score) FROM users GROUP BY city;
