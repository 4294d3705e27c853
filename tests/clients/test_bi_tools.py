"""What BI tools and SQL clients send when they connect and browse schemas, against a
running `ktable serve` (the embedded demo), with the answers PostgreSQL gives for the
demo's declarations: `users` keyed by `id` (one index, `users_pkey`), the stream
`orders` without a key, no foreign keys.

One test (or a few) per tool. Where the tool's driver runs here it is used (psql,
psycopg, SQLAlchemy; pgjdbc in tests/clients/java); otherwise the statements are the
tool's own, taken from its source (named above each), and sent on the protocol the
tool uses: the simple protocol (psycopg's ClientCursor) for Npgsql's connect batch and
psqlODBC (Tableau), the extended protocol (psycopg's default) for the JDBC and Go
drivers of Metabase and Grafana.

Run by hand with `KTABLE_PG_PORT=5433 python3 -m pytest tests/clients/test_bi_tools.py`
while `cargo run -- serve` runs.
"""

import os
import re
import shutil
import subprocess
import time

import psycopg
import pytest
import sqlalchemy

PORT = int(os.environ.get("KTABLE_PG_PORT", "5433"))
DSN = f"host=127.0.0.1 port={PORT} user=ktable dbname=ktable"
USERS_COLUMNS = ["id", "name", "email", "age", "city", "_timestamp"]


@pytest.fixture(scope="module")
def demo_ready():
    """Waits until the server answers and the demo tables exist."""
    deadline = time.time() + 60
    while True:
        try:
            with psycopg.connect(DSN, autocommit=True) as conn:
                if conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0:
                    return
        except psycopg.Error:
            pass
        assert time.time() < deadline, "the demo server did not fill users"
        time.sleep(0.5)


def simple(sql):
    """Runs `sql` (one or more statements) on the simple protocol; every result set."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute(sql)
        results = []
        while True:
            results.append(cur.fetchall() if cur.description else None)
            if not cur.nextset():
                return results


def extended(sql, params=None):
    """Runs one statement on the extended protocol; its column names and rows."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = conn.execute(sql, params, prepare=False)
        return [d.name for d in cur.description], cur.fetchall()


# --- psql (src/bin/psql/describe.c; the installed psql, 15 here) -----------------------


def psql(*commands):
    args = [arg for command in commands for arg in ("-c", command)]
    result = subprocess.run(
        ["psql", "-X", "-h", "127.0.0.1", "-p", str(PORT), "-U", "ktable", "-d", "ktable", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "ERROR" not in result.stderr, f"{commands}: {result.stderr}"
    return result.stdout


needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


@needs_psql
def test_psql_lists_databases_schemas_and_relations(demo_ready):
    assert "datafusion" in psql(r"\l")
    assert " public " in psql(r"\dn")
    tables = psql(r"\dt")
    for table in ("users", "orders", "products"):
        assert re.search(rf" {table}\s+\| table ", tables), tables
    everything = psql(r"\d")
    assert re.search(r" ktable_tables\s+\| view ", everything), everything
    assert re.search(r" ktable_subscriptions\s+\| view ", everything), everything


@needs_psql
def test_psql_describes_a_table_with_its_key_index(demo_ready):
    out = psql(r"\d users")
    assert 'Table "public.users"' in out
    assert " id         | text                        |           | not null |" in out, out
    assert 'Indexes:\n    "users_pkey" PRIMARY KEY, btree (id)' in out, out
    # A stream has no key, so no index.
    assert "Indexes:" not in psql(r"\d orders")


@needs_psql
def test_psql_describes_a_table_verbosely(demo_ready):
    out = psql(r"\d+ users")
    assert "Storage" in out and '"users_pkey" PRIMARY KEY, btree (id)' in out, out


@needs_psql
def test_psql_shows_sizes_with_the_verbose_lists(demo_ready):
    # Each table's size is its memory, as pg_size_pretty writes it; a stream's too.
    tables = psql(r"\dt+")
    for table in ("users", "orders", "products"):
        assert re.search(rf" {table}\s+\| table .*\| \d+ (bytes|kB|MB|GB) ", tables), tables
    assert re.search(r" \d+ (bytes|kB|MB|GB) ", psql(r"\l+")), "no database size"
    # Named as a regclass is, on a connection that has not read pg_class.
    sized = psql("SELECT pg_size_pretty(pg_total_relation_size('users')) AS s")
    assert re.search(r"^ \d+ (kB|MB|GB)$", sized, re.M), sized
    assert "users_pkey" in psql(r"\di+")
    assert "ktable_tables" in psql(r"\dv+")


@needs_psql
def test_psql_lists_roles_settings_and_other_objects(demo_ready):
    # Each has a correlated ARRAY(subquery) or a catalog function of its own.
    assert "List of roles" in psql(r"\du")
    assert "List of roles" in psql(r"\du+")
    assert "non-default configuration parameters" in psql(r"\dconfig")
    assert "List of tablespaces" in psql(r"\db")
    assert "List of operators" in psql(r"\do")
    assert "List of domains" in psql(r"\dD")
    assert 'View "public.ktable_tables"' in psql(r"\d+ ktable_tables")
    # Access privileges are arrays (NULL: the defaults), as array_to_string reads them.
    assert re.search(r" public \| \w+ +\| +\| ", psql(r"\dn+")), "no schema listed"
    assert "List of data types" in psql(r"\dT+")
    assert "List of functions" in psql(r"\df+")


@needs_psql
def test_psql_lists_functions_and_expands_rows(demo_ready):
    assert "List of functions" in psql(r"\df")
    out = psql("\\x", "SELECT 'user-1' AS id")
    assert "Expanded display is on." in out and "-[ RECORD 1 ]" in out, out


# --- SQLAlchemy 2.x (with psycopg 3), reflecting as Superset does ---------------------


def sqlalchemy_engine():
    return sqlalchemy.create_engine(f"postgresql+psycopg://ktable@127.0.0.1:{PORT}/ktable")


def test_sqlalchemy_inspects_keys_indexes_and_constraints(demo_ready):
    inspector = sqlalchemy.inspect(sqlalchemy_engine())
    assert "public" in inspector.get_schema_names()
    assert [c["name"] for c in inspector.get_columns("users")] == USERS_COLUMNS
    pk = inspector.get_pk_constraint("users")
    assert (pk["constrained_columns"], pk["name"], pk["comment"]) == (["id"], "users_pkey", None)
    # SQLAlchemy 2.1 reports PostgreSQL 11's INCLUDE columns of the key's index: none.
    assert pk.get("dialect_options", {}).get("postgresql_include", []) == [], pk
    assert inspector.get_pk_constraint("orders")["constrained_columns"] == []
    assert inspector.get_foreign_keys("users") == []
    # PostgreSQL's dialect leaves the primary key's index out of get_indexes.
    assert inspector.get_indexes("users") == []
    assert inspector.get_unique_constraints("users") == []
    assert inspector.get_check_constraints("users") == []
    assert inspector.get_table_comment("users") == {"text": None}


def test_sqlalchemy_reflects_a_whole_table(demo_ready):
    table = sqlalchemy.Table("users", sqlalchemy.MetaData(), autoload_with=sqlalchemy_engine())
    assert list(table.c.keys()) == USERS_COLUMNS
    assert [c.name for c in table.primary_key.columns] == ["id"]
    assert table.primary_key.name == "users_pkey"
    assert not table.foreign_keys and not table.indexes


# --- Npgsql (Power BI, every .NET client): src/Npgsql/PostgresDatabaseInfo.cs ----------

NPGSQL_LOAD_TYPES = """SELECT version();

SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    -- Arrays have typtype=b - this subquery identifies them by their typreceive and converts their typtype to a
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
    typtype IN ('b', 'r', 'm', 'e', 'd') OR -- Base, range, multirange, enum, domain
    (typtype = 'c' AND relkind='c') OR -- User-defined free-standing composites (not table composites) by default
    (typtype = 'p' AND typname IN ('record', 'void')) OR -- Some special supported pseudo-types
    (typtype = 'a' AND (  -- Array of...
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR -- Array of base, range, multirange, enum, domain
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR -- Arrays of special supported pseudo-types
        (elemtyptype = 'c' AND elemrelkind='c') -- Array of user-defined free-standing composites (not table composites) by default
    ))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0           -- First base types, enums, pseudo-types
       WHEN typtype = 'r' THEN 1                        -- Ranges after
       WHEN typtype = 'm' THEN 2                        -- Multiranges after
       WHEN typtype = 'c' THEN 3                        -- Composites after
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4 -- Domains over non-arrays after
       WHEN typtype = 'a' THEN 5                        -- Arrays after
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6  -- Domains over arrays last
END;

-- Load field definitions for (free-standing) composite types
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     -- Don't load system attributes
  NOT attisdropped
ORDER BY typ.oid, att.attnum;

-- Load enum fields
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder;
"""


def test_npgsql_loads_types_at_connect(demo_ready):
    version, types, composites, enums = simple(NPGSQL_LOAD_TYPES)
    assert version[0][0].startswith("PostgreSQL 16")
    by_name = {row[2]: row for row in types}
    # Base types, and arrays (typtype 'a') pointing at their element type.
    assert by_name["int4"][:4] == ("pg_catalog", 23, "int4", "b")
    assert by_name["text"][:4] == ("pg_catalog", 25, "text", "b")
    assert by_name["_int4"][3] == "a" and by_name["_int4"][5] == 23, by_name["_int4"]
    assert by_name["_text"][3] == "a" and by_name["_text"][5] == 25, by_name["_text"]
    # Base types come before arrays.
    kinds = [row[3] for row in types]
    assert "b" not in kinds[kinds.index("a") :], kinds
    assert composites == [] and enums == []


def test_npgsql_resets_pooled_connections(demo_ready):
    # Npgsql sends DISCARD ALL when a pooled connection is returned.
    assert simple("DISCARD ALL") == [None]


# --- Grafana PostgreSQL data source: postgresMetaQuery.ts ------------------------------

GRAFANA_SEARCH_PATH = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""


def test_grafana_detects_the_version(demo_ready):
    names, rows = extended("SELECT current_setting('server_version_num')::int/100 as version")
    assert names == ["version"] and rows == [(1600,)]
    assert extended("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")[1] == []


def test_grafana_picks_tables_and_columns(demo_ready):
    names, schemas = extended(
        """SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast', '_timescaledb_cache',
                              '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config',
                              'timescaledb_information', 'timescaledb_experimental')
    ORDER BY schema_name"""
    )
    assert ("public",) in schemas
    _, tables = extended(
        f"""SELECT
    CASE WHEN {GRAFANA_SEARCH_PATH}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache',
                             '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config',
                             'timescaledb_information', 'timescaledb_experimental')
    ORDER BY CASE WHEN {GRAFANA_SEARCH_PATH} THEN 0 ELSE 1 END, 1"""
    )
    # public is on the search path: its tables come unqualified.
    assert ("users",) in tables and ("orders",) in tables, tables
    _, columns = extended(
        f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('users'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('users'))[1]
          AND quote_ident(table_name) = (parse_ident('users'))[2]
        ELSE quote_ident(table_name) = 'users'
          AND {GRAFANA_SEARCH_PATH}
      END"""
    )
    assert sorted(columns) == sorted(
        [
            ("id", "text"),
            ("name", "text"),
            ("email", "text"),
            ("age", "integer"),
            ("city", "text"),
            ("_timestamp", "timestamp without time zone"),
        ]
    ), columns


# --- Metabase: src/metabase/driver/postgres.clj (sync), over pgjdbc --------------------


def test_metabase_syncs_tables(demo_ready):
    _, rows = extended(
        """SELECT n.nspname AS schema, c.relname AS name,
       CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW'
         WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type,
       d.description AS description, stat.n_live_tup AS estimated_row_count
FROM pg_catalog.pg_class AS c
INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
LEFT JOIN pg_catalog.pg_description AS d ON (c.oid = d.objoid) AND (d.objsubid = 0) AND (d.classoid = 'pg_class'::regclass)
LEFT JOIN pg_stat_user_tables AS stat ON (n.nspname = stat.schemaname) AND (c.relname = stat.relname)
WHERE (c.relnamespace = n.oid) AND (n.nspname !~ '^pg_') AND (n.nspname <> 'information_schema')
  AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND n.nspname IN ('public')
ORDER BY type ASC, schema ASC, name ASC"""
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("public", "orders", "TABLE"),
        ("public", "products", "TABLE"),
        ("public", "users", "TABLE"),
        ("public", "ktable_subscriptions", "VIEW"),
        ("public", "ktable_tables", "VIEW"),
    ], rows


def test_metabase_describes_fields_with_the_key(demo_ready):
    names, rows = extended(
        """SELECT "c"."column_name" AS "name",
  CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name")
       ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type",
  "c"."ordinal_position" - 1 AS "database-position",
  "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name",
  "pk"."column_name" IS NOT NULL AS "pk?",
  COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment",
  (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO')
    AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required",
  (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment"
FROM "information_schema"."columns" AS "c"
LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name"
           FROM "information_schema"."table_constraints" AS "tc"
           INNER JOIN "information_schema"."key_column_usage" AS "kc"
             ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name")
           WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk"
  ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name")
WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('public')) AND ("c"."table_name" IN ('users'))
ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC"""
    )
    by_name = {r[0]: dict(zip(names, r)) for r in rows}
    assert list(by_name) == USERS_COLUMNS
    assert by_name["id"]["database-type"] == "text" and by_name["age"]["database-type"] == "int4"
    assert by_name["_timestamp"]["database-type"] == "timestamp"
    assert [n for n, r in by_name.items() if r["pk?"]] == ["id"]
    assert by_name["id"]["database-required"] is True and by_name["name"]["database-required"] is False
    assert not any(r["database-is-auto-increment"] for r in by_name.values())


def test_metabase_finds_no_foreign_keys(demo_ready):
    _, rows = extended(
        """SELECT fk_ns.nspname AS "fk-table-schema", fk_table.relname AS "fk-table-name", fk_column.attname AS "fk-column-name",
       pk_ns.nspname AS "pk-table-schema", pk_table.relname AS "pk-table-name", pk_column.attname AS "pk-column-name"
FROM pg_constraint AS c
INNER JOIN pg_class AS fk_table ON c.conrelid = fk_table.oid
INNER JOIN pg_namespace AS fk_ns ON c.connamespace = fk_ns.oid
INNER JOIN pg_attribute AS fk_column ON c.conrelid = fk_column.attrelid
INNER JOIN pg_class AS pk_table ON c.confrelid = pk_table.oid
INNER JOIN pg_namespace AS pk_ns ON pk_table.relnamespace = pk_ns.oid
INNER JOIN pg_attribute AS pk_column ON c.confrelid = pk_column.attrelid
WHERE (fk_ns.nspname !~ '^information_schema|catalog_history|pg_') AND (c.contype = 'f'::char)
  AND (fk_column.attnum = ANY(c.conkey)) AND (pk_column.attnum = ANY(c.confkey))
  AND (fk_table.relname IN ('users')) AND (fk_ns.nspname IN ('public'))
ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC"""
    )
    assert rows == []


def test_metabase_checks_privileges(demo_ready):
    _, rows = extended(
        """with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'UPDATE') as update,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'SELECT') as select,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'INSERT') as insert,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'DELETE') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'USAGE')
)
select t.*
from table_privileges t"""
    )
    selectable = {r[2] for r in rows if r[4]}
    assert {"users", "orders"} <= selectable, rows


# --- DBeaver: plugins/org.jkiss.dbeaver.ext.postgresql (PostgreSchema, PostgreTable) ----


def test_dbeaver_browses_schemas_tables_and_constraints(demo_ready):
    _, schemas = extended(
        """SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
left outer join pg_catalog.pg_description d on d.objoid=n.oid and d.objsubid=0 and d.classoid='pg_namespace'::regclass
 ORDER BY nspname"""
    )
    assert any("public" in row for row in schemas)
    names, tables = extended(
        """select c.oid,c.*,d.description from pg_catalog.pg_class c
left outer join pg_catalog.pg_description d on d.objoid=c.oid and d.objsubid=0 and d.classoid='pg_class'::regclass
where c.relnamespace=(select oid from pg_catalog.pg_namespace where nspname='public') and c.relkind not in ('i','I','c')"""
    )
    relname = names.index("relname")
    assert {"users", "orders"} <= {row[relname] for row in tables}
    names, constraints = extended(
        """select c.oid,c.*,t.relname as tabrelname,case when c.contype='c' then substr(pg_catalog.pg_get_constraintdef(c.oid), 7) else null end consrc_copy
from pg_catalog.pg_constraint c
inner join pg_catalog.pg_class t on t.oid=c.conrelid
where t.relnamespace=(select oid from pg_catalog.pg_namespace where nspname='public') and c.conrelid=(select oid from pg_catalog.pg_class where relname='users')
order by c.oid"""
    )
    rows = [dict(zip(names, r)) for r in constraints]
    assert [(r["conname"], r["contype"], r["tabrelname"]) for r in rows] == [("users_pkey", "p", "users")]
    names, indexes = extended(
        """SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,
pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,
pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE c.relnamespace=(select oid from pg_catalog.pg_namespace where nspname='public') ORDER BY tabrelname, c.relname"""
    )
    rows = [dict(zip(names, r)) for r in indexes]
    # The demo's Avro table, keyed by its first column (`sku`, from the key schema).
    assert [(r["relname"], r["tabrelname"], r["indisprimary"], r["keys"]) for r in rows] == [
        ("products_pkey", "products", True, [1]),
        ("users_pkey", "users", True, [1]),
    ], rows


# --- Tableau (PostgreSQL through psqlODBC: info.c, with UseDeclareFetch) -----------------


def test_tableau_connects_and_lists_tables(demo_ready):
    assert simple("set DateStyle to 'ISO'") == [None]
    assert simple("set extra_float_digits to 2") == [None]
    assert simple("select oid, typbasetype from pg_type where typname = 'lo'") == [[]]
    (tables,) = simple(
        """select relname, nspname, relkind from pg_catalog.pg_class c, pg_catalog.pg_namespace n
where relkind in ('r', 'v', 'm', 'f', 'p') and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1')
and n.oid = relnamespace order by nspname, relname"""
    )
    assert ("users", "public", "r") in tables and ("orders", "public", "r") in tables, tables


def test_tableau_reads_through_a_cursor_with_hold(demo_ready):
    results = simple(
        'BEGIN;declare "SQL_CUR0x1" cursor with hold for SELECT id, name FROM users ORDER BY id;'
        'fetch 2048 in "SQL_CUR0x1";close "SQL_CUR0x1";COMMIT'
    )
    fetched = results[2]
    assert 0 < len(fetched) <= 2048 and all(r[0].startswith("user-") for r in fetched)


# --- Result column names, as PostgreSQL names them (pandas and BI tools show them) -----


def test_result_columns_are_named_as_postgresql_names_them(demo_ready):
    names, _ = extended(
        "SELECT count(*), max(age), lower(name), age::text, 1 + 2, "
        "CASE WHEN age > 1 THEN 'a' END, id FROM users GROUP BY name, age, id"
    )
    assert names == ["count", "max", "lower", "age", "?column?", "case", "id"], names


def test_repeated_result_column_names_are_kept_as_postgresql_gives_them(demo_ready):
    # PostgreSQL names both columns `count`; pandas and BI tools show what it sends.
    assert extended("SELECT count(*), count(age) FROM users")[0] == ["count", "count"]
    with psycopg.connect(DSN, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SELECT id, id, 1 AS n, 2 AS n FROM users LIMIT 1")
        assert [d.name for d in cur.description] == ["id", "id", "n", "n"]
