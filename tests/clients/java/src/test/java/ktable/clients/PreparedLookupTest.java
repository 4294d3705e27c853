package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.postgresql.PGStatement;

/**
 * A key lookup as an application runs it: one PreparedStatement executed many times.
 * pgjdbc sends the first executions as unnamed statements and, from the fifth on
 * (prepareThreshold), parses a named server-side statement once and only binds new
 * parameters: each execution must still answer for its own parameter.
 */
class PreparedLookupTest {
    private static final int EXECUTIONS = 12;

    @Test
    void keyLookupAnswersEachKeyAfterServerSidePrepare() throws Exception {
        try (Connection conn = DemoServer.connect();
                PreparedStatement ps = conn.prepareStatement("SELECT id, name, email, age FROM users WHERE id = ?")) {
            PGStatement pg = ps.unwrap(PGStatement.class);
            assertEquals(5, pg.getPrepareThreshold(), "pgjdbc's default threshold");
            int found = 0;
            for (String id : existingIds(conn)) {
                ps.setString(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    // A tombstone may have deleted this user since it was listed; a row,
                    // if any, must be this user's.
                    if (rs.next()) {
                        found++;
                        String number = id.substring("user-".length());
                        assertEquals(id, rs.getString("id"));
                        assertEquals("User " + number, rs.getString("name"));
                        assertEquals("user" + number + "@example.com", rs.getString("email"));
                        int age = rs.getInt("age");
                        assertTrue(age >= 18 && age <= 77, "age " + age);
                        assertFalse(rs.next(), "a key lookup returned two rows for " + id);
                    }
                }
            }
            assertTrue(pg.isUseServerPrepare(), "pgjdbc never switched to a server-side statement");
            // The generator deletes about five users a second out of a thousand.
            assertTrue(found >= EXECUTIONS / 2, "found only " + found + " of " + EXECUTIONS + " listed users");
        }
    }

    @Test
    void integerParameterIsBoundAnewEachExecution() throws Exception {
        try (Connection conn = DemoServer.connect();
                PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM users WHERE age >= ?")) {
            // Demo ages run from 18 to 77: alternating bounds tell a stale parameter
            // (or a plan cached with the first value) from a fresh one.
            for (int i = 0; i < EXECUTIONS; i++) {
                int minAge = i % 2 == 0 ? 18 : 78;
                ps.setInt(1, minAge);
                try (ResultSet rs = ps.executeQuery()) {
                    assertTrue(rs.next(), "no row from count(*)");
                    long count = rs.getLong(1);
                    if (minAge == 18) {
                        assertTrue(count > 0, "execution " + i + ": no user aged 18 or more");
                    } else {
                        assertEquals(0, count, "execution " + i + ": users aged 78 or more");
                    }
                }
            }
            assertTrue(ps.unwrap(PGStatement.class).isUseServerPrepare());
        }
    }

    private static List<String> existingIds(Connection conn) throws Exception {
        List<String> ids = new ArrayList<>();
        try (Statement st = conn.createStatement();
                ResultSet rs = st.executeQuery("SELECT id FROM users ORDER BY id LIMIT " + EXECUTIONS)) {
            while (rs.next()) {
                ids.add(rs.getString(1));
            }
        }
        assertEquals(EXECUTIONS, ids.size(), "users listed: " + ids);
        return ids;
    }
}
