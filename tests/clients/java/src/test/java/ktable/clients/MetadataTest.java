package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.ResultSet;
import java.sql.Types;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** DatabaseMetaData, which IDEs, BI tools and ORMs walk before any query. */
class MetadataTest {

    @Test
    void getTablesListsTheDemoTableAndStream() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            Map<String, String> types = new HashMap<>();
            try (ResultSet rs = conn.getMetaData().getTables(null, null, "%", null)) {
                while (rs.next()) {
                    types.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
                }
            }
            assertTrue(types.containsKey("users"), "getTables: " + types);
            assertTrue(types.containsKey("orders"), "getTables: " + types);
            assertEquals("TABLE", types.get("users"), "TABLE_TYPE of users");
            // The pg_catalog tables are listed as SYSTEM TABLE, not as user tables.
            assertTrue(
                    !"TABLE".equals(types.get("pg_class")),
                    "pg_class listed as " + types.get("pg_class"));
        }
    }

    @Test
    void getTablesOfTypeTableFindsUsers() throws Exception {
        try (Connection conn = DemoServer.connect();
                ResultSet rs = conn.getMetaData().getTables(null, null, "users", new String[] {"TABLE"})) {
            assertTrue(rs.next(), "no row for users");
            assertEquals("users", rs.getString("TABLE_NAME"));
            assertEquals("public", rs.getString("TABLE_SCHEM"));
        }
    }

    @Test
    void getColumnsDescribesUsers() throws Exception {
        List<String> columns = new ArrayList<>();
        Map<String, Integer> sqlTypes = new HashMap<>();
        Map<String, String> typeNames = new HashMap<>();
        try (Connection conn = DemoServer.connect()) {
            DatabaseMetaData md = conn.getMetaData();
            try (ResultSet rs = md.getColumns(null, null, "users", null)) {
                while (rs.next()) {
                    String name = rs.getString("COLUMN_NAME");
                    columns.add(name);
                    sqlTypes.put(name, rs.getInt("DATA_TYPE"));
                    typeNames.put(name, rs.getString("TYPE_NAME"));
                    assertEquals(columns.size(), rs.getInt("ORDINAL_POSITION"), "position of " + name);
                }
            }
        }
        // sql/demo.sql declares these, in this order.
        assertEquals(List.of("id", "name", "email", "age", "city", "_timestamp"), columns);
        assertEquals(Types.VARCHAR, sqlTypes.get("id"), "id is " + typeNames.get("id"));
        assertEquals(Types.VARCHAR, sqlTypes.get("email"), "email is " + typeNames.get("email"));
        assertEquals(Types.INTEGER, sqlTypes.get("age"), "age is " + typeNames.get("age"));
        assertEquals(Types.TIMESTAMP, sqlTypes.get("_timestamp"), "_timestamp is " + typeNames.get("_timestamp"));
        assertEquals("int4", typeNames.get("age"));
    }
}
