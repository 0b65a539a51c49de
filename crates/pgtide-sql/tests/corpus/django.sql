-- Django 4/5 ORM (psycopg 2 binds client-side: literals in the text; psycopg 3 server-side: $n).

-- expect: session
SET TIME ZONE 'UTC';
-- expect: read
SHOW default_transaction_isolation;
-- expect: read reads=django_migrations
SELECT "django_migrations"."id", "django_migrations"."app", "django_migrations"."name", "django_migrations"."applied" FROM "django_migrations";
-- expect: write writes=django_migrations volatile=no
INSERT INTO "django_migrations" ("app", "name", "applied") VALUES ('auth', '0001_initial', '2024-05-01T10:00:00+00:00'::timestamptz) RETURNING "django_migrations"."id";
-- expect: read reads=pg_catalog.pg_class,pg_catalog.pg_namespace
SELECT c.relname, CASE WHEN c.relispartition THEN 'p' WHEN c.relkind IN ('m', 'v') THEN 'v' ELSE 't' END, obj_description(c.oid, 'pg_class') FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v') AND n.nspname NOT IN ('pg_catalog', 'pg_toast') AND pg_catalog.pg_table_is_visible(c.oid);
-- expect: read reads=auth_user
SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."username" = 'admin' LIMIT 21;
-- expect: read reads=auth_user
SELECT "auth_user"."id", "auth_user"."username" FROM "auth_user" WHERE "auth_user"."id" = $1 LIMIT 21;
-- expect: read reads=django_session volatile=no
SELECT "django_session"."session_key", "django_session"."session_data", "django_session"."expire_date" FROM "django_session" WHERE ("django_session"."expire_date" > '2024-05-01T10:00:00.000000+00:00'::timestamptz AND "django_session"."session_key" = 'x8sd9f8sd7f') LIMIT 21;
-- expect: write writes=django_session
UPDATE "django_session" SET "session_data" = 'e30:1s2', "expire_date" = '2024-05-15T10:00:00+00:00'::timestamptz WHERE "django_session"."session_key" = 'x8sd9f8sd7f';
-- expect: write writes=django_session
DELETE FROM "django_session" WHERE "django_session"."expire_date" < '2024-05-01T10:00:00+00:00'::timestamptz;
-- expect: read reads=blog_entry
SELECT (1) AS "a" FROM "blog_entry" WHERE "blog_entry"."slug" = 'hello' LIMIT 1;
-- expect: read reads=blog_entry
SELECT COUNT(*) AS "__count" FROM "blog_entry" WHERE "blog_entry"."pub_date" >= '2024-01-01'::date;
-- expect: read reads=blog_entry,blog_blog
SELECT "blog_entry"."id", "blog_entry"."headline", "blog_blog"."id", "blog_blog"."name" FROM "blog_entry" INNER JOIN "blog_blog" ON ("blog_entry"."blog_id" = "blog_blog"."id") WHERE "blog_blog"."name" = 'Beatles Blog' ORDER BY "blog_entry"."pub_date" DESC LIMIT 10 OFFSET 20;
-- expect: read reads=blog_entry,blog_entry_authors
SELECT "blog_entry"."id", "blog_entry"."headline" FROM "blog_entry" WHERE "blog_entry"."id" IN (SELECT U0."entry_id" FROM "blog_entry_authors" U0 WHERE U0."author_id" = 5);
-- expect: read reads=blog_entry
SELECT "blog_entry"."id" FROM "blog_entry" WHERE UPPER("blog_entry"."headline"::text) LIKE UPPER('%lennon%');
-- expect: read reads=blog_author,blog_entry_authors
SELECT "blog_author"."id", "blog_author"."name", COUNT("blog_entry_authors"."entry_id") AS "num_entries" FROM "blog_author" LEFT OUTER JOIN "blog_entry_authors" ON ("blog_author"."id" = "blog_entry_authors"."author_id") GROUP BY "blog_author"."id", "blog_author"."name" ORDER BY "num_entries" DESC;
-- expect: read reads=shop_order
SELECT "shop_order"."id", ROW_NUMBER() OVER (PARTITION BY "shop_order"."customer_id" ORDER BY "shop_order"."created" DESC) AS "rn" FROM "shop_order";
-- expect: read reads=shop_product
SELECT "shop_product"."id", "shop_product"."attrs" -> 'color' AS "color" FROM "shop_product" WHERE ("shop_product"."attrs" -> 'size') = '"L"'::jsonb;
-- expect: read reads=shop_product
SELECT "shop_product"."id" FROM "shop_product" WHERE "shop_product"."tags" @> ARRAY['sale']::varchar(32)[];
-- expect: read reads=shop_product
SELECT DISTINCT ON ("shop_product"."category_id") "shop_product"."id" FROM "shop_product" ORDER BY "shop_product"."category_id" ASC, "shop_product"."price" ASC;
-- expect: write writes=django_admin_log
INSERT INTO "django_admin_log" ("action_time", "user_id", "content_type_id", "object_id", "object_repr", "action_flag", "change_message") VALUES ('2024-05-01T10:00:00+00:00'::timestamptz, 1, 7, '3', 'x', 2, '[]') RETURNING "django_admin_log"."id";
-- expect: write writes=shop_order
INSERT INTO "shop_order" ("customer_id", "total") VALUES (1, 10.00), (2, 20.00), (3, 30.00) RETURNING "shop_order"."id";
-- expect: write writes=shop_order
UPDATE "shop_order" SET "status" = CASE WHEN ("shop_order"."id" = 1) THEN 'paid' WHEN ("shop_order"."id" = 2) THEN 'shipped' ELSE NULL END WHERE "shop_order"."id" IN (1, 2);
-- expect: write writes=shop_stock
UPDATE "shop_stock" SET "quantity" = ("shop_stock"."quantity" - 1) WHERE "shop_stock"."id" = 42;
-- expect: write reads=shop_stock
SELECT "shop_stock"."id", "shop_stock"."quantity" FROM "shop_stock" WHERE "shop_stock"."id" = 42 LIMIT 21 FOR UPDATE;
-- expect: write reads=shop_stock
SELECT "shop_stock"."id" FROM "shop_stock" WHERE "shop_stock"."id" = 42 FOR NO KEY UPDATE;
-- expect: write reads=shop_stock
SELECT "shop_stock"."id" FROM "shop_stock" WHERE "shop_stock"."id" = 42 FOR UPDATE NOWAIT;
-- expect: write reads=shop_stock
SELECT "shop_stock"."id" FROM "shop_stock" WHERE "shop_stock"."id" = 42 FOR UPDATE OF "self";
-- expect: write reads=shop_stock
SELECT "shop_stock"."id" FROM "shop_stock" WHERE "shop_stock"."id" = 42 FOR SHARE;
-- expect: write reads=shop_stock
SELECT "shop_stock"."id" FROM "shop_stock" WHERE "shop_stock"."id" = 42 FOR KEY SHARE SKIP LOCKED;
-- expect: tx
SAVEPOINT "s140234_x1";
-- expect: tx
RELEASE SAVEPOINT "s140234_x1";
-- expect: tx
ROLLBACK TO SAVEPOINT "s140234_x1";
-- expect: write writes=blog_entry
CREATE TABLE "blog_entry" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "headline" varchar(255) NOT NULL, "pub_date" date NOT NULL);
-- expect: write writes=blog_entry
ALTER TABLE "blog_entry" ADD CONSTRAINT "blog_entry_blog_id_fk" FOREIGN KEY ("blog_id") REFERENCES "blog_blog" ("id") DEFERRABLE INITIALLY DEFERRED;
-- expect: write writes=blog_entry_blog_id_idx,blog_entry
CREATE INDEX "blog_entry_blog_id_idx" ON "blog_entry" ("blog_id");
-- expect: write
SET CONSTRAINTS "blog_entry_blog_id_fk" IMMEDIATE; SET CONSTRAINTS "blog_entry_blog_id_fk" DEFERRED; ALTER TABLE "blog_entry" DROP CONSTRAINT "blog_entry_blog_id_fk";
-- expect: write volatile=yes
SELECT setval(pg_get_serial_sequence('"blog_entry"','id'), coalesce(max("id"), 1), max("id") IS NOT null) FROM "blog_entry";
-- expect: read reads=django_content_type
SELECT "django_content_type"."id", "django_content_type"."app_label", "django_content_type"."model" FROM "django_content_type" WHERE ("django_content_type"."app_label" = 'blog' AND "django_content_type"."model" = 'entry') LIMIT 21;
-- expect: read reads=auth_permission,django_content_type
SELECT "auth_permission"."content_type_id", "auth_permission"."codename" FROM "auth_permission" INNER JOIN "django_content_type" ON ("auth_permission"."content_type_id" = "django_content_type"."id") WHERE "auth_permission"."content_type_id" IN (1, 2, 3, 4) ORDER BY "django_content_type"."app_label" ASC, "django_content_type"."model" ASC, "auth_permission"."codename" ASC;
-- expect: read reads=blog_entry volatile=yes
SELECT "blog_entry"."id" FROM "blog_entry" WHERE "blog_entry"."pub_date" <= CURRENT_DATE;
-- expect: read reads=shop_order
SELECT "shop_order"."id", EXTRACT(YEAR FROM "shop_order"."created" AT TIME ZONE 'UTC') AS "year" FROM "shop_order" WHERE "shop_order"."created" IS NOT NULL;
-- expect: read reads=shop_order
SELECT "shop_order"."customer_id", SUM("shop_order"."total") FILTER (WHERE "shop_order"."status" = 'paid') AS "paid" FROM "shop_order" GROUP BY "shop_order"."customer_id" HAVING SUM("shop_order"."total") > 100;
