-- What a dump holds, for backup.sh (run in the dump's own snapshot, written
-- beside it as <dump>.manifest) and restore-drill.sh (run on the restored
-- copy, compared with that manifest): one "table<TAB>rows" line per table of
-- the public schema, then a checksum of processed_data's rows in any order.
SELECT format('SELECT %L || E''\t'' || count(*) FROM public.%I', tablename, tablename)
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename
\gexec
SELECT 'checksum processed_data' || E'\t' || coalesce(md5(string_agg(h, '' ORDER BY h)), 'empty')
FROM (SELECT md5(p::text) AS h FROM processed_data p) rows;
