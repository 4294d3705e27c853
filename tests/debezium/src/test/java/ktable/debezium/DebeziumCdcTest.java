package ktable.debezium;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.apicurio.registry.utils.converter.AvroConverter;
import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Change events written by Debezium itself: its PostgreSQL connector (the embedded
 * engine, pgoutput) captures random inserts, updates, deletes and key changes on a real
 * PostgreSQL, and every event is serialized by a Kafka Connect converter and produced
 * to the real broker as Kafka Connect would write it (key, value, and the tombstone
 * after a delete): Kafka Connect's JSON converter with schemas, and Apicurio's Avro
 * converter in Confluent's framing with the schemas in a real registry. ktable reads
 * the topic with {@code envelope = 'debezium'}; its table must come to hold exactly
 * PostgreSQL's rows, first by restoring the topic, then live, each with its last
 * change's metadata.
 *
 * <p>Environment: KAFKA_BROKERS, CDC_PG_PORT (a PostgreSQL with wal_level = logical,
 * user postgres, trust), KTABLE_PG_PORT (a `ktable serve` on that broker, user
 * `ktable`, password `cdc-test`, reading schemas from the registry),
 * KTABLE_TEST_REGISTRY_URL (Apicurio Registry's Confluent API, /apis/ccompat/v7);
 * tests/debezium/run.sh sets them up.
 */
class DebeziumCdcTest {
    private static final String COLUMNS = "id, name, email, balance, born, vip, visits, score, seen, visited, price";
    private static final Duration CONVERGE_TIMEOUT = Duration.ofSeconds(120);

    private static String env(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set: run tests/debezium/run.sh");
        }
        return value;
    }

    private static Connection postgres() throws SQLException {
        return DriverManager.getConnection(
                "jdbc:postgresql://127.0.0.1:" + env("CDC_PG_PORT") + "/postgres?user=postgres");
    }

    private static Connection ktable() throws SQLException {
        return DriverManager.getConnection(
                "jdbc:postgresql://127.0.0.1:" + env("KTABLE_PG_PORT") + "/ktable?user=ktable&password=cdc-test");
    }

    /** A Kafka Connect converter, and the ktable formats that read what it writes. */
    private enum Format {
        JSON("format = 'json', key_format = 'json'") {
            @Override
            Converter converter(boolean isKey) {
                JsonConverter converter = new JsonConverter();
                // Kafka Connect's default: JSON with its schema.
                converter.configure(Map.of("schemas.enable", "true"), isKey);
                return converter;
            }
        },
        AVRO("format = 'avro', key_format = 'avro'") {
            @Override
            Converter converter(boolean isKey) {
                String confluentApi = env("KTABLE_TEST_REGISTRY_URL");
                AvroConverter converter = new AvroConverter();
                converter.configure(Map.of(
                        "apicurio.registry.url", confluentApi.replace("/apis/ccompat/v7", "/apis/registry/v2"),
                        "apicurio.registry.auto-register", "true",
                        // Confluent's framing (magic byte, 4-byte id), with the ids
                        // Confluent's API serves: content ids.
                        "apicurio.registry.as-confluent", "true",
                        "apicurio.registry.use-id", "contentId"), isKey);
                return converter;
            }
        };

        final String ktableFormats;

        Format(String ktableFormats) {
            this.ktableFormats = ktableFormats;
        }

        abstract Converter converter(boolean isKey);
    }

    @Test
    @Timeout(value = 600, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void ktableHoldsWhatPostgresHoldsThroughDebeziumInJson() throws Exception {
        ktableHoldsWhatPostgresHolds(Format.JSON);
    }

    @Test
    @Timeout(value = 600, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void ktableHoldsWhatPostgresHoldsThroughDebeziumInAvro() throws Exception {
        ktableHoldsWhatPostgresHolds(Format.AVRO);
    }

    private void ktableHoldsWhatPostgresHolds(Format format) throws Exception {
        long seed = Long.parseLong(System.getenv().getOrDefault("CDC_SEED", String.valueOf(System.nanoTime())));
        System.out.println("DebeziumCdcTest " + format + " seed " + seed + " (CDC_SEED to repeat)");
        Random random = new Random(seed);
        String run = Long.toHexString(seed & 0xffffffffL) + Long.toHexString(System.nanoTime() & 0xffff);
        String table = "customers_" + run;
        String prefix = "dbz" + run;
        String topic = prefix + ".public." + table;

        try (Connection pg = postgres(); Statement st = pg.createStatement()) {
            st.execute("CREATE TABLE " + table + " (id INT PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
                    + "balance NUMERIC(10, 2), born DATE, vip BOOLEAN, visits BIGINT, "
                    + "score DOUBLE PRECISION, seen TIMESTAMPTZ, visited TIMESTAMP, "
                    // No scale: Debezium writes it as a VariableScaleDecimal.
                    + "price NUMERIC)");
            Changes changes = new Changes(pg, table, random);
            // Rows there before the connector starts reach Kafka as its snapshot ('r').
            for (int i = 0; i < 40; i++) {
                changes.insert();
            }

            AtomicLong produced = new AtomicLong();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            ExecutorService executor = Executors.newSingleThreadExecutor();
            Properties producerConfig = new Properties();
            producerConfig.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, env("KAFKA_BROKERS"));
            producerConfig.put(ProducerConfig.ACKS_CONFIG, "all");
            producerConfig.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            Converter keys = format.converter(true);
            Converter values = format.converter(false);
            try (KafkaProducer<byte[], byte[]> producer =
                            new KafkaProducer<>(producerConfig, new ByteArraySerializer(), new ByteArraySerializer());
                    DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine.create(
                                    ChangeEventFormat.of(Connect.class))
                            .using(connectorConfig(prefix, table, run))
                            .notifying(event -> {
                                // What Kafka Connect's worker does with a source record.
                                SourceRecord record = event.record();
                                byte[] key = keys.fromConnectData(record.topic(), record.keySchema(), record.key());
                                byte[] value =
                                        values.fromConnectData(record.topic(), record.valueSchema(), record.value());
                                producer.send(new ProducerRecord<>(record.topic(), key, value), (meta, error) -> {
                                    if (error != null) {
                                        failure.compareAndSet(null, error);
                                    } else {
                                        produced.incrementAndGet();
                                    }
                                });
                            })
                            .using((success, message, error) -> {
                                if (!success) {
                                    failure.compareAndSet(null, error != null ? error : new IllegalStateException(message));
                                }
                            })
                            .build()) {
                executor.execute(engine);

                // The topic exists once the snapshot's events are in Kafka.
                awaitProduced(produced, 40, failure);
                for (int i = 0; i < 200; i++) {
                    changes.random();
                }

                try (Connection kt = ktable(); Statement kst = kt.createStatement()) {
                    kst.execute("CREATE TABLE " + table + " (id INT PRIMARY KEY, name TEXT, email TEXT, "
                            + "balance DECIMAL(10, 2), born DATE, vip BOOLEAN, visits BIGINT, score DOUBLE, "
                            + "seen TIMESTAMPTZ, visited TIMESTAMP, price DECIMAL(24, 4), "
                            + "_op TEXT, _source_ts_ms BIGINT, _lsn BIGINT) "
                            + "WITH (topic = '" + topic + "', " + format.ktableFormats
                            + ", envelope = 'debezium')");
                    awaitSameRows(pg, kt, table, failure, "after restoring the topic");

                    // Live: ktable reads the changes as Debezium writes them.
                    for (int i = 0; i < 200; i++) {
                        changes.random();
                    }
                    awaitSameRows(pg, kt, table, failure, "after live changes");
                    try (ResultSet rs = kst.executeQuery(
                            "SELECT bad_records FROM ktable_tables WHERE name = '" + table + "'")) {
                        assertTrue(rs.next(), "ktable_tables lists the table");
                        assertEquals(0, rs.getLong(1), "no Debezium event was skipped as bad");
                    }
                    // Each row shows its last change: its op, when and where in the WAL.
                    try (ResultSet rs = kst.executeQuery("SELECT count(*) FILTER (WHERE _op = 'u'), "
                            + "count(*) FILTER (WHERE _op IS NULL OR _op NOT IN ('r', 'c', 'u') "
                            + "OR _source_ts_ms IS NULL OR _lsn IS NULL) FROM " + table)) {
                        assertTrue(rs.next());
                        assertTrue(rs.getLong(1) > 0, "rows last changed by an update show _op = 'u'");
                        assertEquals(0, rs.getLong(2), "every row has _op, _source_ts_ms and _lsn");
                    }
                    kst.execute("DROP TABLE " + table);
                }
            } finally {
                // Closing the engine (above) stops the connector; its thread ends then.
                executor.shutdown();
                executor.awaitTermination(30, TimeUnit.SECONDS);
            }
            st.execute("DROP TABLE " + table);
        }
    }

    private static Properties connectorConfig(String prefix, String table, String run) {
        Properties props = new Properties();
        props.setProperty("name", "ktable-cdc-" + run);
        props.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        props.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        props.setProperty("offset.flush.interval.ms", "1000");
        props.setProperty("database.hostname", "127.0.0.1");
        props.setProperty("database.port", env("CDC_PG_PORT"));
        props.setProperty("database.user", "postgres");
        props.setProperty("database.password", "postgres");
        props.setProperty("database.dbname", "postgres");
        props.setProperty("topic.prefix", prefix);
        props.setProperty("table.include.list", "public." + table);
        props.setProperty("plugin.name", "pgoutput");
        props.setProperty("slot.name", "ktable_" + run);
        props.setProperty("slot.drop.on.stop", "true");
        props.setProperty("publication.name", "ktable_" + run);
        props.setProperty("publication.autocreate.mode", "filtered");
        props.setProperty("snapshot.mode", "initial");
        // Kafka Connect's default: a tombstone after each delete.
        props.setProperty("tombstones.on.delete", "true");
        return props;
    }

    private static void awaitProduced(AtomicLong produced, long count, AtomicReference<Throwable> failure)
            throws InterruptedException {
        Instant deadline = Instant.now().plus(CONVERGE_TIMEOUT);
        while (produced.get() < count) {
            if (failure.get() != null) {
                fail("Debezium or the producer failed", failure.get());
            }
            if (Instant.now().isAfter(deadline)) {
                fail("Debezium produced " + produced.get() + " of " + count + " snapshot events");
            }
            Thread.sleep(100);
        }
    }

    /** Waits until ktable's rows equal PostgreSQL's, and fails with both if they never do. */
    private static void awaitSameRows(
            Connection pg, Connection kt, String table, AtomicReference<Throwable> failure, String when)
            throws Exception {
        Instant deadline = Instant.now().plus(CONVERGE_TIMEOUT);
        List<String> expected = rows(pg, table);
        List<String> actual = List.of();
        while (Instant.now().isBefore(deadline)) {
            if (failure.get() != null) {
                fail("Debezium or the producer failed", failure.get());
            }
            try {
                actual = rows(kt, table);
            } catch (SQLException e) {
                actual = List.of("query failed: " + e.getMessage());
            }
            if (actual.equals(expected)) {
                return;
            }
            Thread.sleep(250);
        }
        TreeSet<String> missing = new TreeSet<>(expected);
        missing.removeAll(actual);
        TreeSet<String> extra = new TreeSet<>(actual);
        extra.removeAll(expected);
        fail(when + ": ktable holds " + actual.size() + " rows, PostgreSQL " + expected.size()
                + "\nonly in PostgreSQL: " + first(missing) + "\nonly in ktable: " + first(extra));
    }

    private static String first(TreeSet<String> rows) {
        List<String> some = new ArrayList<>();
        for (String row : rows) {
            if (some.size() == 5) {
                some.add("...");
                break;
            }
            some.add(row);
        }
        return some.toString();
    }

    /** Every row, ordered by id, each as one comparable line of typed values. */
    private static List<String> rows(Connection conn, String table) throws SQLException {
        List<String> rows = new ArrayList<>();
        try (Statement st = conn.createStatement();
                ResultSet rs = st.executeQuery("SELECT " + COLUMNS + " FROM " + table + " ORDER BY id")) {
            while (rs.next()) {
                BigDecimal balance = rs.getBigDecimal("balance");
                BigDecimal price = rs.getBigDecimal("price");
                OffsetDateTime seen = rs.getObject("seen", OffsetDateTime.class);
                Object visits = rs.getObject("visits");
                Object score = rs.getObject("score");
                Object vip = rs.getObject("vip");
                rows.add(rs.getInt("id") + "|" + rs.getString("name") + "|" + rs.getString("email") + "|"
                        + (balance == null ? null : balance.stripTrailingZeros().toPlainString()) + "|"
                        + rs.getObject("born", LocalDate.class) + "|" + vip + "|"
                        + (visits == null ? null : ((Number) visits).longValue()) + "|"
                        + (score == null ? null : ((Number) score).doubleValue()) + "|"
                        + (seen == null ? null : seen.toInstant()) + "|"
                        + rs.getObject("visited", LocalDateTime.class) + "|"
                        + (price == null ? null : price.stripTrailingZeros().toPlainString()));
            }
        }
        return rows;
    }

    /** Random changes to the PostgreSQL table; the table itself is the model. */
    private static final class Changes {
        private final Connection pg;
        private final String table;
        private final Random random;
        private final List<Integer> ids = new ArrayList<>();
        private int nextId = 1;

        Changes(Connection pg, String table, Random random) {
            this.pg = pg;
            this.table = table;
            this.random = random;
        }

        void random() throws SQLException {
            int pick = random.nextInt(100);
            if (ids.isEmpty() || pick < 35) {
                insert();
            } else if (pick < 80) {
                update();
            } else if (pick < 95) {
                delete();
            } else {
                changeKey();
            }
        }

        void insert() throws SQLException {
            int id = nextId++;
            try (PreparedStatement ps = pg.prepareStatement("INSERT INTO " + table + " (" + COLUMNS
                    + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                ps.setInt(1, id);
                ps.setString(2, "name-" + id + "-" + random.nextInt(1000));
                ps.setString(3, random.nextInt(5) == 0 ? null : "user" + id + "@example.com");
                ps.setBigDecimal(4, random.nextInt(6) == 0 ? null : money());
                ps.setObject(5, random.nextInt(6) == 0 ? null : LocalDate.of(1950, 1, 1).plusDays(random.nextInt(25000)));
                ps.setObject(6, random.nextInt(6) == 0 ? null : random.nextBoolean());
                ps.setObject(7, random.nextInt(6) == 0 ? null : random.nextLong() >> random.nextInt(64));
                ps.setObject(8, random.nextInt(6) == 0 ? null : (random.nextDouble() - 0.5) * 1e6);
                ps.setObject(9, random.nextInt(6) == 0 ? null : instant());
                ps.setObject(10, random.nextInt(6) == 0 ? null : instant().toLocalDateTime());
                ps.setBigDecimal(11, random.nextInt(6) == 0 ? null : price());
                ps.executeUpdate();
            }
            ids.add(id);
        }

        void update() throws SQLException {
            int id = ids.get(random.nextInt(ids.size()));
            try (PreparedStatement ps = pg.prepareStatement(
                    "UPDATE " + table + " SET name = ?, balance = ?, seen = ?, price = ?, "
                            + "visits = coalesce(visits, 0) / 2 + 1 WHERE id = ?")) {
                ps.setString(1, "renamed-" + id + "-" + random.nextInt(1000));
                ps.setBigDecimal(2, random.nextInt(4) == 0 ? null : money());
                ps.setObject(3, instant());
                ps.setBigDecimal(4, random.nextInt(4) == 0 ? null : price());
                ps.setInt(5, id);
                ps.executeUpdate();
            }
        }

        void delete() throws SQLException {
            Integer id = ids.remove(random.nextInt(ids.size()));
            try (PreparedStatement ps = pg.prepareStatement("DELETE FROM " + table + " WHERE id = ?")) {
                ps.setInt(1, id);
                ps.executeUpdate();
            }
        }

        /** A new primary key: Debezium writes a delete (and tombstone) for the old key, a create for the new. */
        void changeKey() throws SQLException {
            int index = random.nextInt(ids.size());
            int from = ids.get(index);
            int to = nextId++;
            try (PreparedStatement ps = pg.prepareStatement("UPDATE " + table + " SET id = ? WHERE id = ?")) {
                ps.setInt(1, to);
                ps.setInt(2, from);
                ps.executeUpdate();
            }
            ids.set(index, to);
        }

        private BigDecimal money() {
            return BigDecimal.valueOf(random.nextLong() % 10_000_000_00L, 2);
        }

        /** Any scale up to 4, as a NUMERIC without one holds it. */
        private BigDecimal price() {
            return BigDecimal.valueOf(random.nextLong() % 1_000_000_000_000L, random.nextInt(5));
        }

        /** Milliseconds: ktable's timestamps hold milliseconds (PostgreSQL's, microseconds). */
        private OffsetDateTime instant() {
            long millis = 946_684_800_000L + (long) (random.nextDouble() * 1e12);
            return Instant.ofEpochMilli(millis).atOffset(ZoneOffset.UTC);
        }
    }
}
