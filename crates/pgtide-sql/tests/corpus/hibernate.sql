-- Hibernate 6 over pgjdbc 42 (server-side $n parameters) and pgjdbc's own statements.

-- expect: session
SET extra_float_digits = 3;
-- expect: session
SET application_name = 'PostgreSQL JDBC Driver';
-- expect: read
SHOW TRANSACTION ISOLATION LEVEL;
-- expect: read volatile=no
select current_schema();
-- expect: read
SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE typname = $1 ORDER BY sp.r, pg_type.oid DESC;
-- expect: read reads=pg_catalog.pg_type
SELECT e.typdelim FROM pg_catalog.pg_type t, pg_catalog.pg_type e WHERE t.oid = $1 and t.typelem = e.oid;
-- expect: tx
BEGIN;
-- expect: tx
BEGIN READ ONLY;
-- expect: tx
SET TRANSACTION READ ONLY;
-- expect: session
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
-- expect: session
SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;
-- expect: read reads=users
select u1_0.id,u1_0.email,u1_0.name,u1_0.version from users u1_0 where u1_0.id=$1;
-- expect: read reads=orders,users
select o1_0.id,o1_0.total,u1_0.id,u1_0.name from orders o1_0 join users u1_0 on u1_0.id=o1_0.user_id where o1_0.status=$1 order by o1_0.created_at desc offset $2 rows fetch first $3 rows only;
-- expect: read reads=orders,order_lines,products
select o1_0.id,l1_0.order_id,l1_0.id,p1_0.id,p1_0.name from orders o1_0 left join order_lines l1_0 on o1_0.id=l1_0.order_id left join products p1_0 on p1_0.id=l1_0.product_id where o1_0.id=$1;
-- expect: write volatile=yes
select nextval('users_seq');
-- expect: write writes=users
insert into users (email,name,version,id) values ($1,$2,$3,$4);
-- expect: write writes=users
update users set email=$1,name=$2,version=$3 where id=$4 and version=$5;
-- expect: write writes=users
delete from users where id=$1 and version=$2;
-- expect: write reads=accounts
select a1_0.id,a1_0.balance from accounts a1_0 where a1_0.id=$1 for no key update;
-- expect: write reads=accounts
select a1_0.id,a1_0.balance from accounts a1_0 where a1_0.id=$1 for update;
-- expect: write reads=accounts
select a1_0.id from accounts a1_0 where a1_0.id=$1 for share;
-- expect: write reads=accounts
select a1_0.id from accounts a1_0 where a1_0.id=$1 for no key update nowait;
-- expect: write reads=accounts
select a1_0.id from accounts a1_0 where a1_0.id=$1 for no key update skip locked;
-- expect: read reads=users
select count(u1_0.id) from users u1_0 where lower(u1_0.email) like lower($1) escape '';
-- expect: read reads=orders
select o1_0.user_id,sum(o1_0.total) from orders o1_0 group by o1_0.user_id having sum(o1_0.total)>$1;
-- expect: read reads=users,orders
select u1_0.id from users u1_0 where exists(select 1 from orders o1_0 where o1_0.user_id=u1_0.id and o1_0.total>$1);
-- expect: read reads=users
select u1_0.id from users u1_0 where u1_0.id in ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16);
-- expect: read reads=products
select p1_0.id,p1_0.name from products p1_0 where p1_0.attributes->>'color'=$1 and p1_0.price between $2 and $3;
-- expect: read reads=users volatile=yes
select u1_0.id from users u1_0 where u1_0.created_at>localtimestamp;
-- expect: write writes=users
update users set version=version+1 where id=$1;
-- expect: write writes=order_lines
delete from order_lines where order_id=$1;
-- expect: write writes=users_seq
create sequence users_seq start with 1 increment by 50;
-- expect: write writes=users
create table users (id bigint not null, email varchar(255), name varchar(255), version integer not null, primary key (id));
-- expect: write
alter table if exists orders add constraint FK_orders_user foreign key (user_id) references users;
-- expect: tx
COMMIT;
-- expect: tx
ROLLBACK;
-- expect: write volatile=yes
select pg_advisory_xact_lock($1);
-- expect: write volatile=yes
select pg_try_advisory_xact_lock($1);
-- expect: read reads=pg_catalog.pg_namespace,pg_catalog.pg_class
SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND n.nspname LIKE 'public' ORDER BY TABLE_SCHEM, TABLE_NAME;
-- expect: read reads=public.flyway_schema_history
SELECT "installed_rank","version","description","type","script","checksum","installed_on","installed_by","execution_time","success" FROM "public"."flyway_schema_history" WHERE "installed_rank" > $1 ORDER BY "installed_rank";
-- expect: write writes=public.flyway_schema_history volatile=no
INSERT INTO "public"."flyway_schema_history" ("installed_rank", "version", "description", "type", "script", "checksum", "installed_by", "execution_time", "success") VALUES ($1, $2, $3, $4, $5, $6, CURRENT_USER, $7, $8);
