package ktable.clients;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Every DatabaseMetaData call that returns rows, as DBeaver, DataGrip and ORMs make them
 * while browsing: each must answer (possibly with no row) rather than fail. (pgjdbc
 * itself implements no getSuperTypes, getSuperTables or getPseudoColumns.)
 */
class MetadataSweepTest {

    interface Call {
        ResultSet run(DatabaseMetaData md) throws Exception;
    }

    private static void check(DatabaseMetaData md, String name, Call call, List<String> failures) {
        try (ResultSet rs = call.run(md)) {
            int columns = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                for (int i = 1; i <= columns; i++) {
                    rs.getObject(i);
                }
            }
        } catch (Exception e) {
            failures.add(name + ": " + e.getMessage());
        }
    }

    @Test
    void everyMetadataCallAnswers() throws Exception {
        List<String> failures = new ArrayList<>();
        try (Connection conn = DemoServer.connect()) {
            DatabaseMetaData md = conn.getMetaData();
            check(md, "getCatalogs", m -> m.getCatalogs(), failures);
            check(md, "getSchemas", m -> m.getSchemas(), failures);
            check(md, "getSchemas(pattern)", m -> m.getSchemas(null, "pub%"), failures);
            check(md, "getTableTypes", m -> m.getTableTypes(), failures);
            check(md, "getColumns(all)", m -> m.getColumns(null, "public", "%", "%"), failures);
            check(md, "getFunctions", m -> m.getFunctions(null, "public", "%"), failures);
            check(md, "getFunctionColumns", m -> m.getFunctionColumns(null, "public", "%", "%"), failures);
            check(md, "getProcedures", m -> m.getProcedures(null, "public", "%"), failures);
            check(md, "getProcedureColumns", m -> m.getProcedureColumns(null, "public", "%", "%"), failures);
            check(md, "getTablePrivileges", m -> m.getTablePrivileges(null, "public", "users"), failures);
            check(md, "getColumnPrivileges", m -> m.getColumnPrivileges(null, "public", "users", "%"), failures);
            check(md, "getBestRowIdentifier",
                    m -> m.getBestRowIdentifier(null, "public", "users", DatabaseMetaData.bestRowSession, true),
                    failures);
            check(md, "getVersionColumns", m -> m.getVersionColumns(null, "public", "users"), failures);
            check(md, "getCrossReference",
                    m -> m.getCrossReference(null, "public", "users", null, "public", "orders"), failures);
            check(md, "getUDTs", m -> m.getUDTs(null, "public", "%", null), failures);
            check(md, "getClientInfoProperties", m -> m.getClientInfoProperties(), failures);
            check(md, "getIndexInfo(stream)", m -> m.getIndexInfo(null, "public", "orders", true, true), failures);
            check(md, "getTables(views)", m -> m.getTables(null, null, "%", new String[] {"VIEW"}), failures);
            check(md, "getTables(system)",
                    m -> m.getTables(null, "pg_catalog", "%", new String[] {"SYSTEM TABLE"}), failures);
            try {
                md.getDatabaseProductVersion();
                md.getUserName();
                md.getSQLKeywords();
                md.getNumericFunctions();
                md.getStringFunctions();
                md.getSystemFunctions();
                md.getTimeDateFunctions();
                md.isReadOnly();
            } catch (Exception e) {
                failures.add("scalar metadata: " + e.getMessage());
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }
}
