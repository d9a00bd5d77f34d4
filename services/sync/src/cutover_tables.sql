-- Every user table of the database, as `regclass` text (quoted and
-- schema-qualified when needed): ordinary and partitioned tables, not
-- their partitions (a parent's rows include them), not the system
-- catalogs, not temporary tables.
SELECT c.oid::regclass::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_temp%'
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
