package ktable.clients;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;

/** Connections to the `ktable serve` demo that .ci/run started (port KTABLE_PG_PORT). */
final class DemoServer {
    /**
     * The generator writes 1,000 users at start, then deletes one user in four of those
     * it touches: a server that has run for minutes holds about 750.
     */
    static final int READY_USERS = 500;

    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    private static volatile boolean ready;

    private DemoServer() {}

    static String url() {
        String port = System.getenv().getOrDefault("KTABLE_PG_PORT", "5433");
        return "jdbc:postgresql://127.0.0.1:" + port + "/ktable?user=ktable";
    }

    /** A connection once the demo holds its users and some orders. */
    static Connection connect() throws SQLException, InterruptedException {
        awaitDemo();
        return DriverManager.getConnection(url());
    }

    // The server accepts connections before the demo topics are restored, so every
    // test waits for the data it asserts on (once per JVM).
    private static synchronized void awaitDemo() throws SQLException, InterruptedException {
        Instant deadline = Instant.now().plus(READY_TIMEOUT);
        while (!ready) {
            try (Connection conn = DriverManager.getConnection(url());
                    Statement st = conn.createStatement()) {
                ready = count(st, "SELECT count(*) FROM users") >= READY_USERS
                        && count(st, "SELECT count(*) FROM orders") > 0;
            } catch (SQLException e) {
                if (Instant.now().isAfter(deadline)) {
                    throw e;
                }
            }
            if (!ready) {
                if (Instant.now().isAfter(deadline)) {
                    throw new IllegalStateException("the demo server did not fill users and orders");
                }
                Thread.sleep(500);
            }
        }
    }

    static long count(Statement st, String query) throws SQLException {
        try (ResultSet rs = st.executeQuery(query)) {
            if (!rs.next()) {
                throw new SQLException("no row from " + query);
            }
            return rs.getLong(1);
        }
    }
}
