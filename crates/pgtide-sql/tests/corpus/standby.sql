-- Statements a standby refuses or that hide what they run (issue 11, item 9): never reads.

-- EXPLAIN with a quoted ANALYZE option runs the statement.
-- expect: write writes=accounts
EXPLAIN ("analyze") DELETE FROM accounts WHERE id = 1;
-- expect: write writes=accounts
EXPLAIN (FORMAT JSON, "analyze" on, BUFFERS) UPDATE accounts SET balance = 0;
-- Only planned.
-- expect: read
EXPLAIN ("analyze" off) DELETE FROM accounts WHERE id = 1;

-- Unicode escapes can spell any function or table name (UESCAPE picks the escape character).
-- expect: write writes=-
SELECT U&"pg_!0061dvisory_lock" UESCAPE '!'(1);
-- expect: write writes=-
SELECT U&"set\005Fconfig"('search_path', 'evil', false);
-- expect: write writes=-
SELECT U&"gin_cle!0061n_pending_list" UESCAPE '!'('gin_idx'::regclass);
-- expect: conservative writes=-
SELECT U&'caf\00E9' AS word;
-- expect: conservative writes=-
SELECT * FROM U&"\0061ccounts";

-- Index maintenance: "recovery is in progress" (55000) on a standby.
-- expect: write
SELECT brin_summarize_new_values('orders_created_brin');
-- expect: write
SELECT brin_summarize_range('orders_created_brin', 0);
-- expect: write
SELECT brin_desummarize_range('orders_created_brin'::regclass, 0);
-- expect: write
SELECT gin_clean_pending_list('docs_body_gin'::regclass);
-- expect: write
SELECT pg_walfile_name(pg_last_wal_replay_lsn());
