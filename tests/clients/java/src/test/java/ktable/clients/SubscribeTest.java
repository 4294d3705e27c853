package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * SUBSCRIBE from pgjdbc the way Materialize documents it: a cursor declared in a
 * transaction, read with plain executeQuery("FETCH ... WITH (timeout)") on the
 * extended protocol.
 */
class SubscribeTest {
    @Test
    void declareThenFetchTheSnapshotAndLiveChanges() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.execute("DECLARE c CURSOR FOR SUBSCRIBE (SELECT id, name FROM users WHERE age >= 18)");
                int snapshot = 0;
                try (ResultSet rs = st.executeQuery("FETCH 10 c WITH (timeout = '2s')")) {
                    ResultSetMetaData meta = rs.getMetaData();
                    assertEquals(5, meta.getColumnCount());
                    assertEquals("ktable_partition", meta.getColumnName(1));
                    assertEquals("ktable_offset", meta.getColumnName(2));
                    assertEquals("ktable_op", meta.getColumnName(3));
                    while (rs.next()) {
                        assertEquals("snapshot", rs.getString("ktable_op"));
                        assertTrue(rs.getString("id").startsWith("user-"));
                        snapshot++;
                    }
                }
                assertEquals(10, snapshot, "FETCH 10 of a snapshot of hundreds");
                // Drain the snapshot, then wait for the generator's next change.
                boolean live = false;
                Instant deadline = Instant.now().plus(Duration.ofSeconds(30));
                while (!live && Instant.now().isBefore(deadline)) {
                    try (ResultSet rs = st.executeQuery("FETCH ALL c WITH (timeout = '2s')")) {
                        while (rs.next()) {
                            String op = rs.getString("ktable_op");
                            if (!op.equals("snapshot")) {
                                assertTrue(op.equals("upsert") || op.equals("delete"), op);
                                assertTrue(rs.getLong("ktable_offset") >= 0);
                                live = true;
                            }
                        }
                    }
                }
                assertTrue(live, "no change arrived within 30 s");
                st.execute("CLOSE c");
            }
            conn.commit();
        }
    }

    @Test
    void aZeroTimeoutReturnsWhatIsReady() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.execute("DECLARE q CURSOR FOR SUBSCRIBE orders");
                Instant started = Instant.now();
                try (ResultSet rs = st.executeQuery("FETCH ALL q WITH (timeout = '0s')")) {
                    while (rs.next()) {
                        assertFalse(rs.getString("ktable_op").equals("snapshot"), "streams start without one");
                    }
                }
                assertTrue(Duration.between(started, Instant.now()).toMillis() < 1500, "0s waits for nothing");
                st.execute("CLOSE q");
            }
            conn.commit();
        }
    }

    /**
     * A bare SUBSCRIBE read through a fetch size: pgjdbc executes its portal for 5
     * rows at a time and hands them to the application before asking for more. A
     * server that streamed the subscription into one Execute would never let
     * executeQuery return.
     */
    @Test
    @Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void aFetchSizeReadsABareSubscribeFiveRowsAtATime() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(5);
                try (ResultSet rs = st.executeQuery("SUBSCRIBE (SELECT id, name FROM users WHERE age >= 18)")) {
                    for (int row = 0; row < 12; row++) {
                        assertTrue(rs.next(), "row " + row);
                        assertEquals("snapshot", rs.getString("ktable_op"));
                        assertTrue(rs.getString("id").startsWith("user-"));
                    }
                }
            }
            conn.commit();
        }
    }
}
