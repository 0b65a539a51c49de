-- Every write rule of `classify`, and reads that must not be mistaken for writes next to them.

-- Data modification.
-- expect: write writes=products
INSERT INTO products (product_no, name, price) VALUES (1, 'Cheese', 9.99);
-- expect: write writes=products
INSERT INTO products DEFAULT VALUES;
-- expect: write reads=new_products writes=products
INSERT INTO products (product_no, name, price) SELECT product_no, name, price FROM new_products WHERE release_date = 'today';
-- expect: write writes=products
UPDATE products SET price = price * 1.10 WHERE price <= 99.99 RETURNING name, price AS new_price;
-- expect: write writes=products
DELETE FROM products WHERE price = 10 RETURNING *;
-- expect: write reads=recent_transactions writes=customer_account
MERGE INTO customer_account ca USING recent_transactions t ON t.customer_id = ca.customer_id WHEN MATCHED THEN UPDATE SET balance = balance + transaction_value WHEN NOT MATCHED THEN INSERT (customer_id, balance) VALUES (t.customer_id, t.transaction_value);
-- expect: write writes=wines
MERGE INTO wines w USING (VALUES ('Chateau Lafite 2003', '24')) v ON v.column1 = w.winename WHEN NOT MATCHED THEN INSERT VALUES (v.column1, v.column2) WHEN MATCHED THEN UPDATE SET stock = stock + v.column2;
-- Writable CTEs.
-- expect: write writes=products,products_log
WITH moved_rows AS (DELETE FROM products WHERE "date" >= '2010-10-01' AND "date" < '2010-11-01' RETURNING *) INSERT INTO products_log SELECT * FROM moved_rows;
-- expect: write writes=products
WITH t AS (UPDATE products SET price = price * 1.05 RETURNING *) SELECT * FROM products;
-- expect: write reads=parts writes=parts
WITH RECURSIVE included_parts(sub_part, part) AS (SELECT sub_part, part FROM parts WHERE part = 'our_product' UNION ALL SELECT p.sub_part, p.part FROM included_parts pr, parts p WHERE p.part = pr.sub_part) DELETE FROM parts WHERE part IN (SELECT part FROM included_parts);
-- expect: write writes=audit
WITH ins AS (INSERT INTO audit (msg) VALUES ('x') RETURNING id) SELECT id FROM ins;
-- expect: write writes=t
SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s;
-- Locking clauses.
-- expect: write reads=accounts
SELECT * FROM accounts WHERE id = 1 FOR UPDATE;
-- expect: write reads=accounts
SELECT * FROM accounts WHERE id = 1 FOR NO KEY UPDATE;
-- expect: write reads=accounts
SELECT * FROM accounts WHERE id = 1 FOR SHARE;
-- expect: write reads=accounts
SELECT * FROM accounts WHERE id = 1 FOR KEY SHARE;
-- expect: write reads=accounts,owners
SELECT * FROM accounts a JOIN owners o ON o.id = a.owner_id FOR UPDATE OF a SKIP LOCKED;
-- expect: write reads=accounts
SELECT * FROM (SELECT * FROM accounts FOR UPDATE) s;
-- expect: write reads=jobs
WITH next AS (SELECT id FROM jobs WHERE state = 'new' LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED) SELECT * FROM next;
-- SELECT INTO.
-- expect: write reads=films writes=films_recent
SELECT * INTO films_recent FROM films WHERE date_prod >= '2002-01-01';
-- expect: write reads=films writes=films_recent
SELECT * INTO TEMPORARY TABLE films_recent FROM films;
-- Side-effect functions.
-- expect: write volatile=yes
SELECT nextval('serial');
-- expect: write volatile=yes
SELECT setval('myseq', 42, true);
-- expect: write volatile=yes
SELECT currval('serial');
-- expect: write volatile=yes
SELECT lastval();
-- expect: write reads=orders volatile=yes
SELECT nextval('order_seq'), o.id FROM orders o WHERE o.id = 1;
-- expect: write volatile=yes
SELECT pg_advisory_lock(42);
-- expect: write volatile=yes
SELECT pg_advisory_lock_shared(42);
-- expect: write volatile=yes
SELECT pg_advisory_xact_lock(42);
-- expect: write volatile=yes
SELECT pg_advisory_unlock_all();
-- expect: write volatile=yes
SELECT pg_try_advisory_lock(42);
-- expect: write volatile=yes
SELECT pg_try_advisory_xact_lock_shared(42);
-- expect: write volatile=yes
SELECT set_config('log_statement_stats', 'off', false);
-- expect: write volatile=yes
SELECT pg_catalog.set_config('search_path', '', false);
-- expect: write volatile=yes
SELECT txid_current();
-- expect: write volatile=yes
SELECT txid_current_if_assigned();
-- expect: write volatile=yes
SELECT pg_current_xact_id();
-- expect: write volatile=yes
SELECT pg_notify('channel', 'payload');
-- expect: write volatile=yes
SELECT lo_import('/etc/motd');
-- expect: write volatile=yes
SELECT lo_export(16385, '/tmp/motd');
-- expect: write volatile=yes
SELECT lo_create(0);
-- expect: write volatile=yes
SELECT lo_unlink(16385);
-- expect: write volatile=yes
SELECT lo_from_bytea(0, '\xdeadbeef');
-- expect: write volatile=yes
SELECT * FROM dblink('dbname=mydb', 'select proname, prosrc from pg_proc') AS t1(proname name, prosrc text);
-- expect: write volatile=yes
SELECT dblink_exec('dbname=postgres', 'insert into foo values(21, ''z'', ''{"a0","b0","c0"}'');');
-- expect: write volatile=yes
SELECT dblink_connect('myconn', 'dbname=postgres');
-- expect: write volatile=yes
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle' AND state_change < now() - interval '1 hour';
-- expect: write volatile=yes
SELECT pg_cancel_backend(12345);
-- expect: write volatile=yes
SELECT pg_reload_conf();
-- expect: write volatile=yes
SELECT pg_switch_wal();
-- expect: write volatile=yes
SELECT pg_create_restore_point('before_upgrade');
-- expect: write volatile=yes
SELECT pg_start_backup('label', true);
-- expect: write volatile=yes
SELECT pg_backup_start('label', fast => true);
-- expect: write volatile=yes
SELECT * FROM pg_backup_stop();
-- expect: write volatile=yes
SELECT pg_create_logical_replication_slot('slot', 'pgoutput');
-- expect: write volatile=yes
SELECT * FROM pg_logical_slot_get_changes('slot', NULL, NULL);
-- expect: write volatile=yes
SELECT pg_stat_reset();
-- expect: write volatile=yes
SELECT pg_current_wal_lsn();
-- expect: write volatile=yes
SELECT id FROM t WHERE id = (SELECT nextval('s'));
-- expect: write volatile=yes
SELECT CASE WHEN $1 THEN pg_advisory_xact_lock(1) END;
-- Reads next to them.
-- expect: read volatile=yes
SELECT pg_sleep(0.1);
-- expect: read reads=pg_sequences
SELECT last_value FROM pg_sequences WHERE sequencename = 'serial';
-- expect: read reads=pg_locks
SELECT locktype, objid FROM pg_locks WHERE locktype = 'advisory';
-- expect: read reads=pg_largeobject_metadata
SELECT oid FROM pg_largeobject_metadata;
-- DDL.
-- expect: write writes=films
CREATE TABLE films (code char(5) CONSTRAINT firstkey PRIMARY KEY, title varchar(40) NOT NULL, did integer NOT NULL, date_prod date, kind varchar(10), len interval hour to minute);
-- expect: write writes=films_recent reads=films
CREATE TABLE films_recent AS SELECT * FROM films WHERE date_prod >= '2002-01-01';
-- expect: write writes=films2
CREATE TABLE films2 AS TABLE films;
-- expect: write writes=comedies reads=films
CREATE VIEW comedies AS SELECT * FROM films WHERE kind = 'Comedy';
-- expect: write writes=sales_summary reads=invoice
CREATE MATERIALIZED VIEW sales_summary AS SELECT seller_no, invoice_date, sum(invoice_amt)::numeric(13,2) as sales_amt FROM invoice WHERE invoice_date < CURRENT_DATE GROUP BY seller_no, invoice_date;
-- expect: write writes=title_idx,films
CREATE UNIQUE INDEX title_idx ON films (title);
-- expect: write writes=sales_quantity_index,sales_table
CREATE INDEX CONCURRENTLY sales_quantity_index ON sales_table (quantity);
-- expect: write writes=distributors
ALTER TABLE distributors ADD COLUMN address varchar(30);
-- expect: write writes=distributors
ALTER TABLE distributors RENAME COLUMN address TO city;
-- expect: write writes=films,distributors
DROP TABLE films, distributors;
-- expect: write writes=title_idx
DROP INDEX title_idx;
-- expect: write writes=kinds
DROP VIEW kinds;
-- expect: write writes=serial
CREATE SEQUENCE serial START 101;
-- expect: write writes=serial
ALTER SEQUENCE serial RESTART WITH 105;
-- expect: write
CREATE SCHEMA myschema;
-- expect: write
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- expect: write
CREATE FUNCTION add(integer, integer) RETURNS integer AS 'select $1 + $2;' LANGUAGE SQL IMMUTABLE RETURNS NULL ON NULL INPUT;
-- expect: write
CREATE OR REPLACE FUNCTION increment(i integer) RETURNS integer AS $$ BEGIN RETURN i + 1; END; $$ LANGUAGE plpgsql;
-- expect: write
CREATE PROCEDURE insert_data(a integer, b integer) LANGUAGE SQL BEGIN ATOMIC INSERT INTO tbl VALUES (a); INSERT INTO tbl VALUES (b); END;
-- expect: write
CREATE TRIGGER check_update BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION check_account_update();
-- expect: write
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
-- expect: write
COMMENT ON TABLE mytable IS 'This is my table.';
-- expect: write writes=bigtable,fattable
TRUNCATE bigtable, fattable RESTART IDENTITY;
-- expect: write writes=othertable
TRUNCATE othertable CASCADE;
-- COPY FROM, CALL, DO, LOCK, LISTEN/NOTIFY, maintenance, privileges.
-- expect: write writes=country
COPY country FROM STDIN;
-- expect: write writes=public.country
COPY public.country (code, name) FROM STDIN (FORMAT csv);
-- expect: write
CALL insert_data(1, 2);
-- expect: write
DO $$DECLARE r record; BEGIN FOR r IN SELECT table_schema, table_name FROM information_schema.tables LOOP EXECUTE 'GRANT ALL ON ' || quote_ident(r.table_schema) || '.' || quote_ident(r.table_name) || ' TO webuser'; END LOOP; END$$;
-- expect: write
DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$;
-- expect: write
LOCK TABLE films IN SHARE ROW EXCLUSIVE MODE;
-- expect: write
LOCK films;
-- expect: write
LISTEN virtual;
-- expect: write
UNLISTEN virtual;
-- expect: write
UNLISTEN *;
-- expect: write
NOTIFY virtual;
-- expect: write
NOTIFY virtual, 'This is the payload';
-- expect: write
VACUUM;
-- expect: write
VACUUM (VERBOSE, ANALYZE) onek;
-- expect: write
VACUUM FULL films;
-- expect: write
ANALYZE;
-- expect: write
ANALYZE users (name, email);
-- expect: write
CLUSTER employees USING employees_ind;
-- expect: write
REINDEX INDEX my_index;
-- expect: write
REINDEX TABLE CONCURRENTLY my_broken_table;
-- expect: write writes=order_summary
REFRESH MATERIALIZED VIEW order_summary;
-- expect: write writes=annual_statistics_basis
REFRESH MATERIALIZED VIEW annual_statistics_basis WITH NO DATA;
-- expect: write
GRANT INSERT ON films TO PUBLIC;
-- expect: write
GRANT admins TO joe;
-- expect: write
REVOKE ALL PRIVILEGES ON kinds FROM manuel;
-- expect: write
CHECKPOINT;
-- expect: write
SECURITY LABEL FOR selinux ON TABLE mytable IS 'system_u:object_r:sepgsql_table_t:s0';
-- expect: write
LOAD 'auto_explain';
-- expect: write
IMPORT FOREIGN SCHEMA foreign_films FROM SERVER film_server INTO films;
-- expect: write
REASSIGN OWNED BY doomed_role TO successor_role;
-- Cursors (bound to one backend's transaction).
-- expect: write
DECLARE liahona CURSOR FOR SELECT * FROM films;
-- expect: write
FETCH FORWARD 5 FROM liahona;
-- expect: write
MOVE FORWARD 5 IN liahona;
-- expect: write
CLOSE liahona;
-- EXPLAIN ANALYZE of writes, PREPARE / EXECUTE.
-- expect: write writes=films
EXPLAIN ANALYZE INSERT INTO films VALUES ('x', 'y', 1, NULL, NULL, NULL);
-- expect: write writes=films
EXPLAIN (ANALYZE TRUE, BUFFERS) DELETE FROM films WHERE kind = 'x';
-- expect: write volatile=yes
EXPLAIN ANALYZE SELECT nextval('serial');
-- expect: write reads=films
EXPLAIN ANALYZE SELECT * FROM films FOR UPDATE;
-- expect: write writes=foo
PREPARE fooplan (int, text, bool, numeric) AS INSERT INTO foo VALUES($1, $2, $3, $4);
-- expect: write reads=accounts
PREPARE lock_it (int) AS SELECT * FROM accounts WHERE id = $1 FOR UPDATE;
-- expect: write
EXECUTE usrrptplan(1, current_date);
-- Multi-statement strings.
-- expect: write reads=a writes=b
SELECT * FROM a; UPDATE b SET x = 1;
-- expect: write
BEGIN; SELECT 1; COMMIT;
-- expect: write writes=t
SET search_path = app; INSERT INTO t VALUES (1);
-- expect: read reads=a,b
SELECT * FROM a; SELECT * FROM b;
-- Unknown, empty, not parsable.
-- expect: write

-- expect: write
SELEC * FROM t;
-- expect: write
SELECT * FROM t WHERE name = 'unterminated;
-- expect: write
SELECT * FROM "unterminated;
-- expect: write
SELECT 1 /* unterminated comment;
-- expect: write
FROBNICATE the_database;
-- expect: write
WITH x AS (SELECT 1) SELEKT * FROM x;
-- Nested deeper than pgtide hands to sqlparser (a read, sent to the primary).
-- expect: conservative
SELECT * FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT a FROM t WHERE a IN (SELECT 1)))))))))))))))))))))))))));
-- Deep, but nothing for sqlparser to do: the fast path answers.
-- expect: read reads=t
SELECT ((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))) FROM t;
-- expect: write
{"not": "sql"};
