-- pgbench built-in scripts (src/bin/pgbench/pgbench.c), as sent with -M simple (literals) and
-- -M extended / prepared ($n), and the statements of `pgbench -i`.

-- expect: tx
BEGIN;
-- expect: write reads=- writes=pgbench_accounts
UPDATE pgbench_accounts SET abalance = abalance + -2811 WHERE aid = 77514;
-- expect: read reads=pgbench_accounts volatile=no
SELECT abalance FROM pgbench_accounts WHERE aid = 77514;
-- expect: write writes=pgbench_tellers
UPDATE pgbench_tellers SET tbalance = tbalance + -2811 WHERE tid = 7;
-- expect: write writes=pgbench_branches
UPDATE pgbench_branches SET bbalance = bbalance + -2811 WHERE bid = 1;
-- expect: write writes=pgbench_history volatile=yes
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 77514, -2811, CURRENT_TIMESTAMP);
-- expect: tx
END;
-- expect: write writes=pgbench_accounts
UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;
-- expect: read reads=pgbench_accounts
SELECT abalance FROM pgbench_accounts WHERE aid = $1;
-- expect: write writes=pgbench_tellers
UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;
-- expect: write writes=pgbench_branches
UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;
-- expect: write writes=pgbench_history volatile=yes
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);
-- expect: read reads=pgbench_accounts
select abalance from pgbench_accounts where aid = 1;
-- A whole tpcb-like transaction in one simple-Query string.
-- expect: write reads=pgbench_accounts writes=pgbench_accounts,pgbench_tellers,pgbench_branches,pgbench_history
BEGIN; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2; SELECT abalance FROM pgbench_accounts WHERE aid = 2; UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3; UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1; INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 2, 1, CURRENT_TIMESTAMP); END;
-- pgbench -i
-- expect: write writes=pgbench_accounts,pgbench_branches,pgbench_history,pgbench_tellers
drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;
-- expect: write writes=pgbench_history
create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler char(22));
-- expect: write writes=pgbench_tellers
create table pgbench_tellers(tid int not null,bid int,tbalance int,filler char(84)) with (fillfactor=100);
-- expect: write writes=pgbench_accounts
create table pgbench_accounts(aid    int not null,bid int,abalance int,filler char(84)) with (fillfactor=100);
-- expect: write writes=pgbench_branches
create table pgbench_branches(bid int not null,bbalance int,filler char(88)) with (fillfactor=100);
-- expect: write writes=pgbench_accounts,pgbench_branches,pgbench_history,pgbench_tellers
truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;
-- expect: write writes=pgbench_branches
insert into pgbench_branches(bid,bbalance) values(1,0);
-- expect: write writes=pgbench_tellers
insert into pgbench_tellers(tid,bid,tbalance) values (1,1,0);
-- expect: write writes=pgbench_accounts
copy pgbench_accounts from stdin with (freeze on);
-- expect: write reads=- writes=pgbench_accounts
insert into pgbench_accounts(aid,bid,abalance,filler) select aid, (aid - 1) / 100000 + 1, 0, '' from generate_series(1, 100000) as aid;
-- expect: write writes=pgbench_tellers
insert into pgbench_tellers(tid,bid,tbalance) select tid, (tid - 1) / 10 + 1, 0 from generate_series(1, 10) as tid;
-- expect: write
vacuum analyze pgbench_branches;
-- expect: write
vacuum analyze pgbench_tellers;
-- expect: write writes=pgbench_branches
alter table pgbench_branches add primary key (bid);
-- expect: write writes=pgbench_accounts
alter table pgbench_accounts add primary key (aid);
-- expect: write
alter table pgbench_tellers add constraint pgbench_tellers_bid_fkey foreign key (bid) references pgbench_branches;
-- expect: read reads=pgbench_branches
select count(*) from pgbench_branches;
-- expect: read reads=pg_catalog.pg_class,pg_catalog.pg_namespace,pg_catalog.pg_partitioned_table,pg_catalog.pg_inherits
select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1;
-- expect: write
set session_replication_role = replica; truncate pgbench_history;
-- expect: session
SET default_transaction_isolation = 'repeatable read';
-- expect: read reads=pgbench_accounts
SELECT sum(abalance) FROM pgbench_accounts;
-- expect: read reads=pgbench_branches,pgbench_tellers
SELECT b.bid, sum(t.tbalance) FROM pgbench_branches b JOIN pgbench_tellers t ON t.bid = b.bid GROUP BY b.bid HAVING sum(t.tbalance) <> 0 ORDER BY b.bid;
-- expect: read reads=pgbench_history volatile=yes
SELECT count(*) FROM pgbench_history WHERE mtime > now() - interval '1 minute';
-- expect: read reads=pgbench_accounts
SELECT aid, abalance FROM pgbench_accounts WHERE aid BETWEEN $1 AND $2 ORDER BY aid LIMIT 100;
-- expect: write reads=pgbench_accounts
SELECT abalance FROM pgbench_accounts WHERE aid = $1 FOR UPDATE;
