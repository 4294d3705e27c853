import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * Restores a GlobalKTable of a topic with Kafka Streams and prints the seconds from
 * {@code KafkaStreams.start()} until the instance is RUNNING (a global store is
 * bootstrapped from the earliest offset to the end before that), then the keys it
 * holds. A fresh application id and state folder per run, so nothing is reused.
 *
 * <p>Usage: {@code GlobalTableRestore <brokers> <topic> <in-memory|rocksdb>}
 */
public final class GlobalTableRestore {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: GlobalTableRestore <brokers> <topic> <in-memory|rocksdb>");
            System.exit(2);
        }
        String brokers = args[0];
        String topic = args[1];
        boolean inMemory = args[2].equals("in-memory");
        Path state = Files.createTempDirectory("ktable-bench-streams-");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "bench-global-" + System.nanoTime());
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        props.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());

        KeyValueBytesStoreSupplier store = inMemory
                ? Stores.inMemoryKeyValueStore("users")
                : Stores.persistentKeyValueStore("users");
        StreamsBuilder builder = new StreamsBuilder();
        builder.globalTable(
                topic,
                Consumed.with(Serdes.String(), Serdes.String()),
                Materialized.<String, String>as(store)
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch running = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                running.countDown();
            }
        });
        long started = System.nanoTime();
        streams.start();
        if (!running.await(1200, TimeUnit.SECONDS)) {
            System.err.println("not RUNNING after 1200 s");
            System.exit(1);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        ReadOnlyKeyValueStore<String, String> view = streams.store(
                StoreQueryParameters.fromNameAndType("users", QueryableStoreTypes.keyValueStore()));
        long keys = 0;
        try (var all = view.all()) {
            while (all.hasNext()) {
                all.next();
                keys++;
            }
        }
        System.out.printf("%.3f %d%n", seconds, keys);
        streams.close();
        streams.cleanUp();
    }
}
