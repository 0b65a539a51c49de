-- SQLAlchemy 2 Core/ORM with psycopg 2 (literals) and asyncpg/psycopg 3 ($n).

-- expect: read volatile=no
select pg_catalog.version();
-- expect: read
select current_schema();
-- expect: read
show standard_conforming_strings;
-- expect: read
select pg_catalog.pg_get_userbyid(1);
-- expect: read reads=pg_catalog.pg_class,pg_catalog.pg_namespace
SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relname = 'users' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog';
-- expect: read reads=users
SELECT users.id, users.name, users.fullname FROM users WHERE users.name = 'spongebob';
-- expect: read reads=users
SELECT users.id, users.name FROM users WHERE users.id = $1::INTEGER;
-- expect: read reads=users,addresses
SELECT users.id, users.name, addresses.email_address FROM users JOIN addresses ON users.id = addresses.user_id WHERE addresses.email_address = 'sandy@sqlalchemy.org';
-- expect: read reads=users,addresses
SELECT users.name, addresses.email_address FROM users, addresses WHERE users.id = addresses.user_id AND users.name IN ('squidward', 'sandy') ORDER BY addresses.id;
-- expect: read reads=users
SELECT anon_1.users_id, anon_1.users_name FROM (SELECT users.id AS users_id, users.name AS users_name FROM users ORDER BY users.id LIMIT 10 OFFSET 20) AS anon_1;
-- expect: read reads=users,addresses
SELECT users.name, count(addresses.id) AS count FROM users LEFT OUTER JOIN addresses ON users.id = addresses.user_id GROUP BY users.name HAVING count(addresses.id) > 1;
-- expect: read reads=addresses
SELECT addresses.user_id AS addresses_user_id, addresses.id AS addresses_id FROM addresses WHERE addresses.user_id IN (1, 2, 3);
-- expect: read reads=users,addresses
SELECT users.name FROM users WHERE EXISTS (SELECT addresses.id FROM addresses WHERE addresses.user_id = users.id AND addresses.email_address LIKE '%@aol.com');
-- expect: read reads=users,addresses
SELECT anon_1.name, anon_2.email_address FROM (SELECT users.id AS id, users.name AS name FROM users) AS anon_1 JOIN LATERAL (SELECT addresses.email_address AS email_address FROM addresses WHERE addresses.user_id = anon_1.id LIMIT 1) AS anon_2 ON true;
-- expect: read reads=orders
WITH regional AS (SELECT orders.region AS region, sum(orders.amount) AS total FROM orders GROUP BY orders.region) SELECT regional.region, regional.total FROM regional WHERE regional.total > 1000;
-- expect: read reads=users
SELECT users.id FROM users WHERE users.name ILIKE '%' || 'pat' || '%' ORDER BY users.id DESC NULLS LAST;
-- expect: read reads=documents
SELECT documents.id FROM documents WHERE documents.data ->> 'type' = 'invoice' AND (documents.data -> 'meta' ->> 'year')::int = 2024;
-- expect: read reads=employees
SELECT employees.name, rank() OVER (PARTITION BY employees.dept ORDER BY employees.salary DESC) AS anon_1 FROM employees;
-- expect: write writes=users
INSERT INTO users (name, fullname) VALUES ('spongebob', 'Spongebob Squarepants') RETURNING users.id;
-- expect: write writes=users
INSERT INTO users (name, fullname) VALUES ($1::VARCHAR, $2::VARCHAR) RETURNING users.id;
-- expect: write reads=- writes=users
INSERT INTO users (name, fullname) SELECT p0::VARCHAR, p1::VARCHAR FROM (VALUES ('a', 'A', 0), ('b', 'B', 1)) AS imp_sen(p0, p1, sen_counter) ORDER BY sen_counter RETURNING users.id, users.id AS id__1;
-- expect: write reads=addresses writes=users
UPDATE users SET fullname=('Mr. ' || users.fullname) FROM addresses WHERE users.id = addresses.user_id AND addresses.email_address = 'x@y.z';
-- expect: write writes=users
UPDATE users SET name=$1::VARCHAR WHERE users.id = $2::INTEGER;
-- expect: write writes=addresses
DELETE FROM addresses WHERE addresses.id = 4;
-- expect: write reads=users writes=addresses
DELETE FROM addresses USING users WHERE users.id = addresses.user_id AND users.name = 'patrick';
-- expect: write writes=users
INSERT INTO users (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name;
-- expect: write writes=users
INSERT INTO users (id, name) VALUES (1, 'x') ON CONFLICT ON CONSTRAINT users_pkey DO NOTHING;
-- expect: write reads=users
SELECT users.id FROM users WHERE users.id = 5 FOR UPDATE OF users;
-- expect: write writes=users
CREATE TABLE users (id SERIAL NOT NULL, name VARCHAR(30) NOT NULL, fullname VARCHAR, PRIMARY KEY (id));
-- expect: write writes=addresses
DROP TABLE addresses;
-- expect: tx
BEGIN;
-- expect: tx
COMMIT;
-- expect: read reads=alembic_version
SELECT alembic_version.version_num FROM alembic_version;
-- expect: write writes=alembic_version
UPDATE alembic_version SET version_num='b8a1c3' WHERE alembic_version.version_num = 'a0f2d4';
-- expect: read reads=users
SELECT count(*) AS count_1 FROM (SELECT users.id AS users_id FROM users WHERE users.name LIKE 's%') AS anon_1;
-- expect: read reads=users,orders
SELECT users.id FROM users UNION ALL SELECT orders.user_id FROM orders;
-- expect: read reads=users
SELECT users.id, CASE WHEN (users.name = 'x') THEN 'special' ELSE users.name END AS anon_1 FROM users;
-- expect: read reads=users
SELECT users.id FROM users WHERE users.id = ANY ($1::INTEGER[]);
