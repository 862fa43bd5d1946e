//! What one schema holds, as PostgreSQL's catalog describes it: the evidence
//! that refundd never creates, alters or adds a trigger to anything of the
//! shop's. Tests take a snapshot of the shop's schema and of `public` before
//! `migrate` and passes, and another after, and require them to be equal.

use super::StoreError;
use sqlx::PgPool;

/// One line per object: schema, tables (and views, sequences, types) with
/// owner, privileges, options and comment, columns with position, type,
/// nullability, default, identity, generation, collation and comment,
/// constraints, indexes, triggers, rules, policies, functions, views,
/// sequences, types and extensions, each with its definition. Names and
/// definitions are fully qualified (read with `search_path` = `pg_catalog`).
/// Row data and sequences' current values are not part of it.
const SNAPSHOT: &str = r#"
WITH ns AS (
    SELECT oid, nspname, nspowner, nspacl FROM pg_namespace WHERE nspname = $1
),
rel AS (
    SELECT c.* FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
)
SELECT format('schema %I: owner %s, acl %s', nspname, pg_get_userbyid(nspowner),
              coalesce(nspacl::text, '-'))
  FROM ns
UNION ALL
SELECT format('relation %I: kind %s, persistence %s, owner %s, acl %s, options %s, rls %s/%s, replica identity %s, comment %s',
              relname, relkind, relpersistence, pg_get_userbyid(relowner),
              coalesce(relacl::text, '-'), coalesce(reloptions::text, '-'),
              relrowsecurity, relforcerowsecurity, relreplident,
              coalesce(quote_literal(obj_description(oid, 'pg_class')), '-'))
  FROM rel
 WHERE relkind NOT IN ('i', 'I', 't')
UNION ALL
SELECT format('column %I.%I #%s: %s%s%s%s%s%s%s, comment %s',
              r.relname, a.attname,
              row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
              format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
              CASE WHEN d.adbin IS NULL OR a.attgenerated <> '' THEN ''
                   ELSE ' default ' || pg_get_expr(d.adbin, d.adrelid) END,
              CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
              CASE WHEN a.attgenerated <> ''
                   THEN ' generated ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
              CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                   THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END,
              CASE WHEN a.attacl IS NULL THEN '' ELSE ' acl ' || a.attacl::text END,
              coalesce(quote_literal(col_description(a.attrelid, a.attnum)), '-'))
  FROM rel r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE r.relkind NOT IN ('i', 'I', 't', 'S')
UNION ALL
SELECT format('constraint %I.%I: %s', coalesce(r.relname, t.typname), con.conname,
              pg_get_constraintdef(con.oid, true))
  FROM pg_constraint con
  JOIN ns ON con.connamespace = ns.oid
  LEFT JOIN pg_class r ON r.oid = con.conrelid
  LEFT JOIN pg_type t ON t.oid = con.contypid
UNION ALL
SELECT format('index %I: %s%s', i.relname, pg_get_indexdef(i.oid),
              CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END)
  FROM rel i
  JOIN pg_index x ON x.indexrelid = i.oid
UNION ALL
SELECT format('trigger %I.%I: %s, enabled %s', r.relname, tg.tgname,
              pg_get_triggerdef(tg.oid, true), tg.tgenabled)
  FROM pg_trigger tg
  JOIN rel r ON r.oid = tg.tgrelid
 WHERE NOT tg.tgisinternal
UNION ALL
SELECT format('rule %I.%I: %s', tablename, rulename, definition)
  FROM pg_rules
 WHERE schemaname = $1
UNION ALL
SELECT format('policy %I.%I: %s', r.relname, p.polname,
              concat_ws(' ', p.polcmd, p.polpermissive, p.polroles::text,
                        pg_get_expr(p.polqual, p.polrelid),
                        pg_get_expr(p.polwithcheck, p.polrelid)))
  FROM pg_policy p
  JOIN rel r ON r.oid = p.polrelid
UNION ALL
SELECT format('function %s: owner %s, acl %s%s', p.oid::regprocedure,
              pg_get_userbyid(p.proowner), coalesce(p.proacl::text, '-'),
              CASE WHEN p.prokind = 'a' THEN ', aggregate'
                   ELSE E'\n' || pg_get_functiondef(p.oid) END)
  FROM pg_proc p
  JOIN ns ON p.pronamespace = ns.oid
UNION ALL
SELECT format('view %I: %s', relname, pg_get_viewdef(oid, true))
  FROM rel
 WHERE relkind IN ('v', 'm')
UNION ALL
SELECT format('sequence %I: %s start %s increment %s min %s max %s cache %s cycle %s owned by %s',
              r.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
              s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
              coalesce((SELECT format('%s.%I', dep.refobjid::regclass, a.attname)
                          FROM pg_depend dep
                          JOIN pg_attribute a ON a.attrelid = dep.refobjid
                                             AND a.attnum = dep.refobjsubid
                         WHERE dep.classid = 'pg_class'::regclass
                           AND dep.objid = r.oid
                           AND dep.refclassid = 'pg_class'::regclass
                           AND dep.deptype IN ('a', 'i')
                         LIMIT 1), '-'))
  FROM rel r
  JOIN pg_sequence s ON s.seqrelid = r.oid
UNION ALL
SELECT format('type %I: %s', t.typname,
              CASE t.typtype
                  WHEN 'e' THEN 'enum ' || (SELECT string_agg(quote_literal(e.enumlabel), ', '
                                                              ORDER BY e.enumsortorder)
                                              FROM pg_enum e WHERE e.enumtypid = t.oid)
                  WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod)
                                || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                                || coalesce(' default ' || t.typdefault, '')
                  WHEN 'r' THEN 'range of ' || (SELECT format_type(rngsubtype, NULL)
                                                  FROM pg_range WHERE rngtypid = t.oid)
                  ELSE 'kind ' || t.typtype::text
              END)
  FROM pg_type t
  JOIN ns ON t.typnamespace = ns.oid
 WHERE t.typcategory <> 'A'  -- arrays come with their element type
   AND (t.typtype IN ('e', 'd', 'r', 'b')
        OR (t.typtype = 'c'
            AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
UNION ALL
SELECT format('extension %I: version %s', e.extname, e.extversion)
  FROM pg_extension e
  JOIN ns ON e.extnamespace = ns.oid
"#;

/// A sorted description of everything in `schema` (see `SNAPSHOT`'s
/// comment): equal snapshots mean nothing in the schema was created, altered,
/// dropped or given a trigger. An absent schema gives an empty snapshot.
pub async fn snapshot(pool: &PgPool, schema: &str) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    // Qualified names in every definition, whatever the connection's search_path.
    sqlx::query("SET LOCAL search_path = pg_catalog, pg_temp")
        .execute(&mut *tx)
        .await?;
    let mut lines: Vec<String> = sqlx::query_scalar(SNAPSHOT)
        .bind(schema)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    lines.sort_unstable();
    Ok(lines)
}
