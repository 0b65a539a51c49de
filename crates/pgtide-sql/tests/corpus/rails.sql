-- Ruby on Rails (ActiveRecord 7, PostgreSQL adapter, prepared statements on).

-- expect: session
SET client_min_messages TO 'warning';
-- expect: session
SET standard_conforming_strings = on;
-- expect: session
SET intervalstyle = iso_8601;
-- expect: read
SHOW max_identifier_length;
-- expect: read
SHOW search_path;
-- expect: read reads=pg_type
SELECT t.oid, t.typname FROM pg_type as t WHERE t.typname IN ('int2', 'int4', 'int8', 'oid', 'float4', 'float8', 'numeric', 'bool', 'timestamp', 'timestamptz');
-- expect: read reads=pg_type,pg_range
SELECT t.oid, t.typname, t.typelem, t.typdelim, t.typinput, r.rngsubtype, t.typtype, t.typbasetype FROM pg_type as t LEFT JOIN pg_range as r ON oid = rngtypid WHERE t.typtype IN ('r', 'e', 'd') OR t.typinput = 'array_in(cstring,oid,integer)'::regprocedure OR t.typelem != 0;
-- expect: read reads=pg_attribute,pg_attrdef,pg_type,pg_collation
SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.atttypid, a.atttypmod, c.collname, col_description(a.attrelid, a.attnum) AS comment, attidentity AS identity, attgenerated as attgenerated FROM pg_attribute a LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND a.attnum = d.adnum LEFT JOIN pg_type t ON a.atttypid = t.oid LEFT JOIN pg_collation c ON a.attcollation = c.oid AND a.attcollation <> t.typcollation WHERE a.attrelid = '"users"'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;
-- expect: read reads=pg_class,pg_namespace
SELECT c.relname FROM pg_class c LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY (current_schemas(false)) AND c.relname = 'schema_migrations' AND c.relkind IN ('r','p');
-- expect: read reads=schema_migrations
SELECT "schema_migrations"."version" FROM "schema_migrations" ORDER BY "schema_migrations"."version" ASC;
-- expect: read reads=ar_internal_metadata
SELECT "ar_internal_metadata"."value" FROM "ar_internal_metadata" WHERE "ar_internal_metadata"."key" = $1 ORDER BY "ar_internal_metadata"."key" ASC LIMIT 1;
-- expect: write volatile=yes
SELECT pg_try_advisory_lock(1654894537215063385);
-- expect: write volatile=yes
SELECT pg_advisory_unlock(1654894537215063385);
-- expect: write writes=schema_migrations
CREATE TABLE "schema_migrations" ("version" character varying NOT NULL PRIMARY KEY);
-- expect: write writes=users
CREATE TABLE "users" ("id" bigserial primary key, "name" character varying, "email" character varying NOT NULL, "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL);
-- expect: write writes=index_users_on_email,users
CREATE UNIQUE INDEX "index_users_on_email" ON "users" ("email");
-- expect: write writes=schema_migrations
INSERT INTO "schema_migrations" ("version") VALUES ($1) RETURNING "version";
-- expect: read reads=users
SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2;
-- expect: read reads=users
SELECT "users".* FROM "users" WHERE "users"."email" = $1 LIMIT $2;
-- expect: read reads=users
SELECT 1 AS one FROM "users" WHERE "users"."email" = $1 LIMIT $2;
-- expect: read reads=users
SELECT "users".* FROM "users" WHERE "users"."email" ILIKE $1 ORDER BY "users"."created_at" DESC LIMIT $2 OFFSET $3;
-- expect: read reads=posts
SELECT COUNT(*) FROM "posts" WHERE "posts"."user_id" = $1;
-- expect: read reads=posts
SELECT "posts".* FROM "posts" WHERE "posts"."user_id" IN ($1, $2, $3, $4, $5);
-- expect: read reads=comments
SELECT "comments".* FROM "comments" WHERE "comments"."post_id" IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) ORDER BY "comments"."id" ASC;
-- expect: read reads=posts,users
SELECT "posts"."id" AS t0_r0, "posts"."title" AS t0_r1, "users"."id" AS t1_r0, "users"."name" AS t1_r1 FROM "posts" LEFT OUTER JOIN "users" ON "users"."id" = "posts"."user_id" WHERE "posts"."published" = $1;
-- expect: read reads=posts,taggings,tags
SELECT DISTINCT "posts".* FROM "posts" INNER JOIN "taggings" ON "taggings"."post_id" = "posts"."id" INNER JOIN "tags" ON "tags"."id" = "taggings"."tag_id" WHERE "tags"."name" = $1;
-- expect: read reads=users
SELECT "users"."email" FROM "users";
-- expect: read reads=users
SELECT "users"."id", "users"."name" FROM "users" WHERE "users"."id" > $1 ORDER BY "users"."id" ASC LIMIT $2;
-- expect: read reads=orders
SELECT SUM("orders"."total") FROM "orders" WHERE "orders"."status" = $1 AND "orders"."created_at" BETWEEN $2 AND $3;
-- expect: read reads=orders
SELECT COUNT(*) AS "count_all", "orders"."status" AS "orders_status" FROM "orders" GROUP BY "orders"."status";
-- expect: read reads=users,posts
SELECT "users".* FROM "users" WHERE "users"."id" IN (SELECT "posts"."user_id" FROM "posts" WHERE "posts"."published" = $1);
-- expect: read reads=users,posts
SELECT "users".* FROM "users" WHERE EXISTS (SELECT 1 FROM "posts" WHERE "posts"."user_id" = "users"."id");
-- expect: read reads=events
SELECT "events".* FROM "events" WHERE ("events"."payload" ->> 'kind') = $1 AND "events"."payload" @> $2;
-- expect: tx
BEGIN;
-- expect: write reads=- writes=users
INSERT INTO "users" ("name", "email", "created_at", "updated_at") VALUES ($1, $2, $3, $4) RETURNING "id";
-- expect: tx
COMMIT;
-- expect: write writes=users
UPDATE "users" SET "name" = $1, "updated_at" = $2 WHERE "users"."id" = $3;
-- expect: write writes=sessions
DELETE FROM "sessions" WHERE "sessions"."id" = $1;
-- expect: write writes=posts
UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) + $1 WHERE "posts"."id" = $2;
-- expect: write writes=users
UPDATE "users" SET "lock_version" = $1, "updated_at" = $2 WHERE "users"."id" = $3 AND "users"."lock_version" = $4;
-- expect: write writes=products
INSERT INTO "products" ("sku","name","created_at","updated_at") VALUES ('a-1', 'A', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), ('b-2', 'B', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) ON CONFLICT ("sku") DO UPDATE SET updated_at=(CASE WHEN ("products"."name" IS NOT DISTINCT FROM excluded."name") THEN "products".updated_at ELSE CURRENT_TIMESTAMP END),"name"=excluded."name" RETURNING "id";
-- expect: write writes=products
INSERT INTO "products" ("sku","name") VALUES ('a', 'b') ON CONFLICT ("sku") DO NOTHING RETURNING "id";
-- expect: write reads=accounts
SELECT "accounts".* FROM "accounts" WHERE "accounts"."id" = $1 LIMIT $2 FOR UPDATE;
-- expect: write reads=jobs
SELECT "jobs".* FROM "jobs" WHERE "jobs"."queue" = $1 ORDER BY "jobs"."priority" LIMIT $2 FOR UPDATE SKIP LOCKED;
-- expect: tx
SAVEPOINT active_record_1;
-- expect: tx
RELEASE SAVEPOINT active_record_1;
-- expect: tx
ROLLBACK TO SAVEPOINT active_record_1;
-- expect: write writes=users
DELETE FROM "users" WHERE "users"."id" IN (SELECT "users"."id" FROM "users" WHERE "users"."created_at" < $1 LIMIT $2);
-- expect: write writes=users
UPDATE "users" SET "active" = $1 WHERE "users"."id" IN (SELECT "users"."id" FROM "users" WHERE "users"."last_seen_at" < $2);
-- expect: read reads=users
SELECT "users"."id", "users"."name" FROM "users" WHERE "users"."deleted_at" IS NULL AND ("users"."name" ILIKE '%smith%' OR "users"."email" ILIKE '%smith%') LIMIT 25;
-- expect: read reads=active_storage_attachments,active_storage_blobs
SELECT "active_storage_attachments".*, "active_storage_blobs"."key" FROM "active_storage_attachments" INNER JOIN "active_storage_blobs" ON "active_storage_blobs"."id" = "active_storage_attachments"."blob_id" WHERE "active_storage_attachments"."record_type" = $1 AND "active_storage_attachments"."record_id" = $2;
-- expect: write writes=solid_queue_jobs
INSERT INTO "solid_queue_jobs" ("queue_name", "class_name", "arguments", "priority", "scheduled_at", "created_at", "updated_at") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING "id";
