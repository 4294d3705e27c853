package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * pgjdbc's DatabaseMetaData for keys, indexes and types (DBeaver, DataGrip, Metabase and
 * every JDBC BI tool call these): the answers PostgreSQL gives for the demo's tables, whose
 * only index is the key's (users_pkey on users.id) and which have no foreign keys.
 */
class KeysMetadataTest {

    @Test
    void getPrimaryKeysNamesTheKeyColumn() throws Exception {
        try (Connection conn = DemoServer.connect();
                ResultSet rs = conn.getMetaData().getPrimaryKeys(null, "public", "users")) {
            assertTrue(rs.next(), "no primary key for users");
            assertEquals("users", rs.getString("TABLE_NAME"));
            assertEquals("id", rs.getString("COLUMN_NAME"));
            assertEquals(1, rs.getInt("KEY_SEQ"));
            assertEquals("users_pkey", rs.getString("PK_NAME"));
            assertFalse(rs.next(), "users has a one-column key");
        }
        try (Connection conn = DemoServer.connect();
                ResultSet rs = conn.getMetaData().getPrimaryKeys(null, "public", "orders")) {
            assertFalse(rs.next(), "a stream has no key");
        }
    }

    @Test
    void getIndexInfoListsOnlyTheKeyIndex() throws Exception {
        List<String> rows = new ArrayList<>();
        try (Connection conn = DemoServer.connect();
                ResultSet rs = conn.getMetaData().getIndexInfo(null, "public", "users", false, false)) {
            while (rs.next()) {
                rows.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME") + ":"
                        + rs.getBoolean("NON_UNIQUE") + ":" + rs.getInt("ORDINAL_POSITION"));
            }
        }
        assertEquals(List.of("users_pkey:id:false:1"), rows);
    }

    @Test
    void noForeignKeys() throws Exception {
        try (Connection conn = DemoServer.connect()) {
            DatabaseMetaData md = conn.getMetaData();
            try (ResultSet rs = md.getImportedKeys(null, "public", "users")) {
                assertFalse(rs.next(), "imported keys of users");
            }
            try (ResultSet rs = md.getExportedKeys(null, "public", "users")) {
                assertFalse(rs.next(), "exported keys of users");
            }
        }
    }

    @Test
    void getTypeInfoListsTheBuiltInTypes() throws Exception {
        Set<String> names = new HashSet<>();
        try (Connection conn = DemoServer.connect();
                ResultSet rs = conn.getMetaData().getTypeInfo()) {
            while (rs.next()) {
                names.add(rs.getString("TYPE_NAME"));
            }
        }
        for (String type : List.of("int4", "int8", "text", "varchar", "bool", "float8", "timestamp")) {
            assertTrue(names.contains(type), "getTypeInfo lacks " + type + ": " + names.size() + " types");
        }
    }
}
