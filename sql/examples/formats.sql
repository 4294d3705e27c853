-- Sources in each value format, for your own brokers and schema registry:
--   ktable serve --brokers HOST:9092 --schema-registry http://HOST:8081 --sql my.sql
-- Not loaded at start-up (`serve` runs the .sql files directly in sql/ only).
-- The embedded demo declares an Avro table like the first one (`products`).

-- Avro in Confluent's wire format; no column list: the columns come from the latest
-- schema of subject `products-value`, the key column from `products-key`.
CREATE TABLE products WITH (topic = 'products', format = 'avro', key_format = 'avro');

-- Avro with declared columns: records of every registered version are resolved to the
-- latest schema (a field added with a default gets it, int widens to long).
CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT, email TEXT, tier TEXT)
  WITH (topic = 'customers', format = 'avro', key_format = 'bigint',
        schema_registry = 'http://registry:8081');

-- Protobuf in Confluent's wire format: the columns of message `Shipment` of the latest
-- `.proto` of `shipments-value`.
CREATE TABLE shipments WITH (topic = 'shipments', format = 'protobuf', message = 'Shipment');

-- JSON written by Confluent's JSONSerializer (JSON Schema framing): declared columns.
CREATE TABLE prices (sku TEXT PRIMARY KEY, price DECIMAL(10, 2), currency TEXT)
  WITH (topic = 'prices', format = 'json_sr');

-- A composite key read from a JSON struct key {"tenant": ..., "id": ...}.
CREATE TABLE accounts (tenant TEXT, id BIGINT, plan TEXT, PRIMARY KEY (tenant, id))
  WITH (topic = 'accounts', format = 'json', key_format = 'json');

-- Debezium change events of a PostgreSQL table (JSON converter, with or without its
-- schemas): c/r/u upsert `after`, d deletes the key, the tombstone after it is a no-op.
CREATE TABLE pg_customers (id INT PRIMARY KEY, name TEXT, email TEXT, _op TEXT)
  WITH (topic = 'pg.public.customers', key_format = 'json', envelope = 'debezium');

-- The same events written with Confluent's Avro converter.
CREATE TABLE pg_orders WITH (topic = 'pg.public.orders', format = 'avro',
  key_format = 'avro', envelope = 'debezium');
