-- Prisma Client 5 (query engine, $n parameters, fully qualified quoted names).

-- expect: read reads=public."User"
SELECT "public"."User"."id", "public"."User"."email", "public"."User"."name" FROM "public"."User" WHERE ("public"."User"."id" = $1 AND 1=1) LIMIT $2 OFFSET $3;
-- expect: read reads=public."User"
SELECT "public"."User"."id", "public"."User"."email" FROM "public"."User" WHERE "public"."User"."email" = $1 LIMIT $2 OFFSET $3;
-- expect: read reads=public."Post"
SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."authorId" FROM "public"."Post" WHERE "public"."Post"."authorId" IN ($1,$2,$3) OFFSET $4;
-- expect: read reads=public."Post"
SELECT "public"."Post"."id", "public"."Post"."title" FROM "public"."Post" WHERE ("public"."Post"."published" = $1 AND "public"."Post"."title"::text ILIKE $2) ORDER BY "public"."Post"."createdAt" DESC LIMIT $3 OFFSET $4;
-- expect: read reads=public."Post"
SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."Post"."id" FROM "public"."Post" WHERE "public"."Post"."published" = $1 OFFSET $2) AS "sub";
-- expect: read reads=public."User",public."Post"
SELECT "t1"."id", "t1"."email", "User_posts"."__prisma_data__" AS "posts" FROM "public"."User" AS "t1" LEFT JOIN LATERAL (SELECT COALESCE(JSONB_AGG("__prisma_data__"), '[]') AS "__prisma_data__" FROM (SELECT "t4"."__prisma_data__" FROM (SELECT JSONB_BUILD_OBJECT('id', "t3"."id", 'title', "t3"."title") AS "__prisma_data__" FROM (SELECT "t2".* FROM "public"."Post" AS "t2" WHERE "t1"."id" = "t2"."authorId") AS "t3") AS "t4") AS "t5") AS "User_posts" ON true WHERE "t1"."id" = $1 LIMIT $2;
-- expect: read reads=public."Post",public."_CategoryToPost"
SELECT "public"."Post"."id" FROM "public"."Post" WHERE ("public"."Post"."id") IN (SELECT "t1"."B" FROM "public"."_CategoryToPost" AS "t1" WHERE ("t1"."A" = $1 AND "t1"."B" IS NOT NULL)) OFFSET $2;
-- expect: read reads=public."Profile"
SELECT "public"."Profile"."id", "public"."Profile"."bio"::text FROM "public"."Profile" WHERE ("public"."Profile"."data" #>> ARRAY[$1]::text[])::jsonb = $2 OFFSET $3;
-- expect: tx
BEGIN;
-- expect: write writes=public."User"
INSERT INTO "public"."User" ("email","name") VALUES ($1,$2) RETURNING "public"."User"."id", "public"."User"."email", "public"."User"."name";
-- expect: write writes=public."Post"
INSERT INTO "public"."Post" ("title","authorId","published") VALUES ($1,$2,$3), ($4,$5,$6) ON CONFLICT DO NOTHING;
-- expect: tx
COMMIT;
-- expect: write writes=public."User"
UPDATE "public"."User" SET "name" = $1 WHERE ("public"."User"."id" = $2 AND 1=1) RETURNING "public"."User"."id", "public"."User"."name";
-- expect: write writes=public."Post"
UPDATE "public"."Post" SET "viewCount" = ("viewCount" + $1) WHERE ("public"."Post"."id" = $2 AND 1=1);
-- expect: write writes=public."Post"
DELETE FROM "public"."Post" WHERE ("public"."Post"."id" = $1 AND 1=1);
-- expect: write writes=public."Post"
DELETE FROM "public"."Post" WHERE "public"."Post"."authorId" IN ($1,$2);
-- expect: write writes=public."User"
INSERT INTO "public"."User" ("id","email") VALUES ($1,$2) ON CONFLICT ("email") DO UPDATE SET "name" = $3 WHERE ("public"."User"."email" = $4 AND 1=1) RETURNING "public"."User"."id";
-- expect: tx
ROLLBACK;
-- expect: read reads=public._prisma_migrations
SELECT "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count" FROM "public"."_prisma_migrations" ORDER BY "started_at" ASC;
-- expect: write volatile=yes
SELECT pg_advisory_lock(72707369);
-- expect: write volatile=yes
SELECT pg_advisory_unlock(72707369);
-- expect: write writes=_prisma_migrations
CREATE TABLE IF NOT EXISTS "_prisma_migrations" ("id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0);
-- expect: write writes=_prisma_migrations volatile=yes
INSERT INTO "_prisma_migrations" ("id", "checksum", "started_at", "migration_name", "applied_steps_count") VALUES ($1, $2, now(), $3, 0);
-- expect: write writes=_prisma_migrations volatile=yes
UPDATE "_prisma_migrations" SET "finished_at" = now(), "applied_steps_count" = "applied_steps_count" + 1 WHERE "id" = $1;
-- expect: read reads=information_schema.schemata
SELECT EXISTS(SELECT 1 FROM "information_schema"."schemata" WHERE schema_name = $1);
-- expect: read reads=pg_class,pg_namespace
SELECT tbl.relname AS table_name, namespace.nspname as namespace FROM pg_class AS tbl INNER JOIN pg_namespace AS namespace ON namespace.oid = tbl.relnamespace WHERE ( ( tbl.relkind = 'r' AND tbl.relpersistence = 'p' ) OR tbl.relkind = 'p' ) AND namespace.nspname = ANY ( $1 ) ORDER BY namespace, table_name;
-- expect: read reads=information_schema.columns,pg_attribute,pg_class,pg_namespace
SELECT oid.namespace, info.table_name, info.column_name, format_type(att.atttypid, att.atttypmod) as formatted_type FROM information_schema.columns info JOIN pg_attribute att ON att.attname = info.column_name JOIN (SELECT pg_class.oid, relname, pg_namespace.nspname as namespace FROM pg_class JOIN pg_namespace on pg_namespace.oid = pg_class.relnamespace AND pg_namespace.nspname = ANY ( $1 )) as oid on oid.oid = att.attrelid AND relname = info.table_name AND namespace = info.table_schema ORDER BY namespace, table_name, ordinal_position;
-- expect: read reads=public."User"
SELECT "public"."User"."id", "public"."User"."email" FROM "public"."User" WHERE "public"."User"."id" IN ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) OFFSET $11;
-- expect: read reads=public."Order"
SELECT "public"."Order"."status", COUNT("public"."Order"."id") AS "_count_id", SUM("public"."Order"."total") AS "_sum_total" FROM "public"."Order" WHERE 1=1 GROUP BY "public"."Order"."status" OFFSET $1;
-- expect: read reads=public."User"
SELECT "public"."User"."id" FROM "public"."User" WHERE ("public"."User"."id" > $1 AND 1=1) ORDER BY "public"."User"."id" ASC LIMIT $2 OFFSET $3;
-- expect: read reads=public."Post"
SELECT "public"."Post"."id" FROM "public"."Post" WHERE NOT "public"."Post"."title"::text LIKE $1 OFFSET $2;
-- expect: write volatile=yes
SELECT * FROM "public"."User" WHERE "id" = $1 AND pg_advisory_xact_lock(hashtext($2)) IS NOT NULL;
