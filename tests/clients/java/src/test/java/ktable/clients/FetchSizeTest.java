package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Field;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Streaming a large result: with autocommit off and a fetch size, pgjdbc executes the
 * portal for FETCH_SIZE rows at a time (Execute with a row limit, PortalSuspended, and
 * Execute again) instead of reading the whole result into memory.
 */
class FetchSizeTest {
    private static final int FETCH_SIZE = 10;

    @Test
    void iteratesEveryRowInBatches() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(FETCH_SIZE);
                // The table changes while it is read, so the expected count comes from
                // the same scan: count(*) OVER () is the row count of this very result.
                try (ResultSet rs = st.executeQuery("SELECT id, name, count(*) OVER () AS total FROM users")) {
                    assertTrue(bufferedRows(rs) <= FETCH_SIZE,
                            "the first fetch held " + bufferedRows(rs) + " rows: the server ignored the row limit");
                    long streamed = 0;
                    long total = -1;
                    Set<String> ids = new HashSet<>();
                    while (rs.next()) {
                        streamed++;
                        total = rs.getLong("total");
                        assertTrue(ids.add(rs.getString("id")), "key listed twice: " + rs.getString("id"));
                    }
                    assertTrue(streamed > 20L * FETCH_SIZE, "only " + streamed + " rows");
                    assertEquals(total, streamed, "rows streamed vs count(*) of the same query");
                }
                // And against a separate count(*): the generator changes a few users a
                // second, so the two agree closely but not to the row.
                long counted = DemoServer.count(st, "SELECT count(*) FROM users");
                assertTrue(counted > 20L * FETCH_SIZE, "count(*) " + counted);
            }
            conn.commit();
        }
    }

    @Test
    void streamsAFixedResultExactly() throws Exception {
        // A result that does not change: the exact number of rows, in order, in batches.
        try (Connection conn = DemoServer.connect()) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(FETCH_SIZE);
                long expected = DemoServer.count(st, "SELECT count(*) FROM generate_series(1, 2345)");
                assertEquals(2345, expected);
                try (ResultSet rs = st.executeQuery("SELECT value FROM generate_series(1, 2345) ORDER BY value")) {
                    assertTrue(bufferedRows(rs) <= FETCH_SIZE, "the first fetch held " + bufferedRows(rs) + " rows");
                    long n = 0;
                    while (rs.next()) {
                        n++;
                        assertEquals(n, rs.getLong(1));
                    }
                    assertEquals(expected, n);
                }
            }
            conn.commit();
        }
    }

    /**
     * The rows pgjdbc holds for the current fetch. JDBC has no public way to see the
     * batches, and without this the test would pass on a server that sends everything.
     */
    private static int bufferedRows(ResultSet rs) throws Exception {
        Object pgResultSet = rs.unwrap(org.postgresql.jdbc.PgResultSet.class);
        Field rows = org.postgresql.jdbc.PgResultSet.class.getDeclaredField("rows");
        rows.setAccessible(true);
        List<?> held = (List<?>) rows.get(pgResultSet);
        assertNotNull(held, "pgjdbc holds no rows");
        return held.size();
    }
}
