-- Examples from the PostgreSQL documentation (tutorial, queries, SELECT, functions, COPY,
-- EXPLAIN, transactions).

-- expect: read reads=weather
SELECT * FROM weather;
-- expect: read reads=weather
SELECT city, (temp_hi+temp_lo)/2 AS temp_avg, date FROM weather;
-- expect: read reads=weather
SELECT * FROM weather WHERE city = 'San Francisco' AND prcp > 0.0;
-- expect: read reads=weather
SELECT DISTINCT city FROM weather ORDER BY city;
-- expect: read reads=weather,cities
SELECT * FROM weather JOIN cities ON city = name;
-- expect: read reads=weather,cities
SELECT weather.city, weather.temp_lo, weather.temp_hi, weather.prcp, weather.date, cities.location FROM weather JOIN cities ON weather.city = cities.name;
-- expect: read reads=weather,cities
SELECT * FROM weather LEFT OUTER JOIN cities ON weather.city = cities.name;
-- expect: read reads=weather
SELECT w1.city, w1.temp_lo AS low, w1.temp_hi AS high, w2.city, w2.temp_lo AS low, w2.temp_hi AS high FROM weather w1 JOIN weather w2 ON w1.temp_lo < w2.temp_lo AND w1.temp_hi > w2.temp_hi;
-- expect: read reads=weather
SELECT max(temp_lo) FROM weather;
-- expect: read reads=weather
SELECT city FROM weather WHERE temp_lo = (SELECT max(temp_lo) FROM weather);
-- expect: read reads=weather
SELECT city, count(*), max(temp_lo) FROM weather GROUP BY city HAVING max(temp_lo) < 40;
-- expect: read reads=weather
SELECT city, count(*) FILTER (WHERE temp_lo < 45), max(temp_lo) FROM weather GROUP BY city;
-- expect: read reads=empsalary
SELECT depname, empno, salary, avg(salary) OVER (PARTITION BY depname) FROM empsalary;
-- expect: read reads=empsalary
SELECT depname, empno, salary, rank() OVER (PARTITION BY depname ORDER BY salary DESC) FROM empsalary;
-- expect: read reads=empsalary
SELECT salary, sum(salary) OVER () FROM empsalary;
-- expect: read reads=empsalary
SELECT depname, empno, salary, enroll_date FROM (SELECT depname, empno, salary, enroll_date, rank() OVER (PARTITION BY depname ORDER BY salary DESC, empno) AS pos FROM empsalary) AS ss WHERE pos < 3;
-- expect: read reads=empsalary
SELECT sum(salary) OVER w, avg(salary) OVER w FROM empsalary WINDOW w AS (PARTITION BY depname ORDER BY salary DESC);
-- expect: read reads=cities
SELECT name, elevation FROM cities WHERE elevation > 500;
-- expect: read reads=cities
SELECT name, elevation FROM ONLY cities WHERE elevation > 500;
-- expect: read reads=t1,t2
SELECT * FROM t1 CROSS JOIN t2;
-- expect: read reads=t1,t2
SELECT * FROM t1 INNER JOIN t2 USING (num);
-- expect: read reads=t1,t2
SELECT * FROM t1 NATURAL INNER JOIN t2;
-- expect: read reads=t1,t2
SELECT * FROM t1 FULL JOIN t2 ON t1.num = t2.num;
-- expect: read reads=t1,t2
SELECT * FROM t1 LEFT JOIN t2 ON t1.num = t2.num AND t2.value = 'xxx';
-- expect: read reads=people
SELECT * FROM people AS mother JOIN people AS child ON mother.id = child.mother_id;
-- expect: read reads=fdt
SELECT * FROM fdt WHERE c1 > 5;
-- expect: read reads=fdt
SELECT * FROM fdt WHERE c1 IN (1, 2, 3);
-- expect: read reads=fdt,t2
SELECT * FROM fdt WHERE c1 IN (SELECT c1 FROM t2);
-- expect: read reads=fdt,t2
SELECT * FROM fdt WHERE c1 IN (SELECT c3 FROM t2 WHERE c2 = fdt.c1 + 10);
-- expect: read reads=fdt,t2
SELECT * FROM fdt WHERE EXISTS (SELECT c1 FROM t2 WHERE c2 > fdt.c1);
-- expect: read reads=test1
SELECT x, sum(y) FROM test1 GROUP BY x;
-- expect: read reads=items_sold
SELECT brand, size, sum(sales) FROM items_sold GROUP BY GROUPING SETS ((brand), (size), ());
-- expect: read reads=items_sold
SELECT brand, size, sum(sales) FROM items_sold GROUP BY ROLLUP (brand, size);
-- expect: read reads=items_sold
SELECT brand, size, sum(sales) FROM items_sold GROUP BY CUBE (brand, size);
-- expect: read reads=products,product_lines
SELECT * FROM products p LEFT JOIN LATERAL (SELECT * FROM product_lines pl WHERE pl.product_id = p.id LIMIT 1) x ON true;
-- expect: read
SELECT * FROM unnest(ARRAY['a','b','c','d','e','f']) WITH ORDINALITY;
-- expect: read
SELECT * FROM generate_series(2,4);
-- expect: read volatile=yes
SELECT current_date + s.a AS dates FROM generate_series(0,14,7) AS s(a);
-- sqlparser 0.63 cannot parse ROWS FROM (...): sent to the primary.
-- expect: conservative
SELECT * FROM ROWS FROM (json_to_recordset('[{"a":40,"b":"foo"},{"a":"100","b":"bar"}]') AS (a INTEGER, b TEXT), generate_series(1, 3)) AS x (p, q, s) ORDER BY p;
-- expect: read reads=products
SELECT * FROM products ORDER BY price DESC LIMIT 10 OFFSET 20;
-- expect: read reads=films
SELECT * FROM films FETCH FIRST 3 ROWS ONLY;
-- expect: read reads=films
TABLE films;
-- expect: read
VALUES (1, 'one'), (2, 'two'), (3, 'three');
-- expect: read
SELECT * FROM (VALUES (1, 'one'), (2, 'two'), (3, 'three')) AS t (num,letter);
-- expect: read reads=orders
WITH regional_sales AS (SELECT region, SUM(amount) AS total_sales FROM orders GROUP BY region), top_regions AS (SELECT region FROM regional_sales WHERE total_sales > (SELECT SUM(total_sales)/10 FROM regional_sales)) SELECT region, product, SUM(quantity) AS product_units, SUM(amount) AS product_sales FROM orders WHERE region IN (SELECT region FROM top_regions) GROUP BY region, product;
-- expect: read reads=-
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t;
-- expect: read reads=parts
WITH RECURSIVE included_parts(sub_part, part, quantity) AS (SELECT sub_part, part, quantity FROM parts WHERE part = 'our_product' UNION ALL SELECT p.sub_part, p.part, p.quantity * pr.quantity FROM included_parts pr, parts p WHERE p.part = pr.sub_part) SELECT sub_part, SUM(quantity) as total_quantity FROM included_parts GROUP BY sub_part;
-- sqlparser 0.63 cannot parse SEARCH DEPTH FIRST BY: sent to the primary.
-- expect: conservative
WITH RECURSIVE search_graph(id, link, data, depth) AS (SELECT g.id, g.link, g.data, 0 FROM graph g UNION ALL SELECT g.id, g.link, g.data, sg.depth + 1 FROM graph g, search_graph sg WHERE g.id = sg.link) SEARCH DEPTH FIRST BY id SET ordercol SELECT * FROM search_graph ORDER BY ordercol;
-- expect: read reads=big_table
WITH w AS MATERIALIZED (SELECT * FROM big_table) SELECT * FROM w AS w1 JOIN w AS w2 ON w1.key = w2.ref WHERE w2.key = 123;
-- expect: read reads=distributors
SELECT d.name FROM distributors d WHERE d.name LIKE 'W%' UNION SELECT d.name FROM distributors d WHERE d.name LIKE 'A%';
-- expect: read reads=films
SELECT kind, sum(len) AS total FROM films GROUP BY kind HAVING sum(len) < interval '5 hours';
-- expect: read reads=films
SELECT * FROM films WHERE title ~* '^the' AND did BETWEEN 100 AND 200;
-- expect: read reads=mytable
SELECT * FROM mytable WHERE jdoc @> '{"company": "Magnafone"}' AND jdoc ? 'tags';
-- expect: read reads=api
SELECT jdoc->'guid', jdoc->'name' FROM api WHERE jdoc @@ '$.tags[*] == "qui"';
-- expect: read reads=sal_emp
SELECT name FROM sal_emp WHERE pay_by_quarter[1] <> pay_by_quarter[2];
-- expect: read reads=sal_emp
SELECT array_dims(schedule), schedule[1:2][1:1] FROM sal_emp WHERE name = 'Bill';
-- expect: read reads=pgweb
SELECT title FROM pgweb WHERE to_tsvector('english', body) @@ to_tsquery('english', 'friend') ORDER BY ts_rank(to_tsvector(body), to_tsquery('friend')) DESC LIMIT 10;
-- expect: read
SELECT CASE WHEN a=1 THEN 'one' WHEN a=2 THEN 'two' ELSE 'other' END FROM (VALUES (1), (2), (3)) v(a);
-- expect: read reads=tab
SELECT COALESCE(description, short_description, '(none)') FROM tab;
-- expect: read volatile=yes
SELECT date_trunc('hour', now()), extract(epoch FROM now() - '2024-01-01'::timestamptz);
-- expect: read volatile=yes
SELECT age(timestamp '1957-06-13');
-- expect: read volatile=yes
SELECT random(), gen_random_uuid();
-- expect: read volatile=no
SELECT format('Hello %s, %1$s', 'World'), md5('abc'), length('jose'), upper('tom');
-- expect: read
SELECT pg_size_pretty(pg_total_relation_size('films'));
-- expect: read reads=pg_stat_activity
SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database();
-- expect: read volatile=yes
SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn();
-- expect: read reads=foo
EXPLAIN SELECT * FROM foo;
-- expect: read reads=foo
EXPLAIN (COSTS FALSE) SELECT * FROM foo WHERE i = 4;
-- expect: read reads=foo
EXPLAIN (FORMAT JSON) SELECT * FROM foo;
-- expect: read reads=tenk1,tenk2
EXPLAIN ANALYZE SELECT * FROM tenk1 t1, tenk2 t2 WHERE t1.unique1 < 100 AND t1.unique2 = t2.unique2 ORDER BY t1.fivethous;
-- expect: read reads=tenk1
EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM tenk1 WHERE unique1 < 100 AND unique2 > 9000;
-- expect: write writes=tenk1
EXPLAIN ANALYZE UPDATE tenk1 SET hundred = hundred + 1 WHERE unique1 < 100;
-- expect: read writes=-
EXPLAIN UPDATE tenk1 SET hundred = hundred + 1 WHERE unique1 < 100;
-- expect: read reads=country
COPY country TO STDOUT (DELIMITER '|');
-- expect: read reads=country
COPY (SELECT * FROM country WHERE country_name LIKE 'A%') TO STDOUT;
-- expect: write writes=country
COPY country FROM '/usr1/proj/bray/sql/country_data';
-- expect: write reads=country
COPY (SELECT * FROM country WHERE country_name LIKE 'A%') TO '/usr1/proj/bray/sql/a_list_countries.copy';
-- expect: write reads=country
COPY country TO PROGRAM 'gzip > /usr1/proj/bray/sql/country_data.gz';
-- expect: write writes=country
COPY country FROM STDIN WITH (FORMAT csv, HEADER true);
-- expect: tx
BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE;
-- expect: tx
START TRANSACTION ISOLATION LEVEL REPEATABLE READ;
-- expect: tx
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;
-- expect: tx
SET TRANSACTION SNAPSHOT '00000003-0000001B-1';
-- expect: tx
COMMIT AND CHAIN;
-- expect: tx
ABORT;
-- expect: tx
SAVEPOINT my_savepoint;
-- expect: tx
RELEASE my_savepoint;
-- expect: tx
ROLLBACK TO my_savepoint;
-- expect: tx
PREPARE TRANSACTION 'foobar';
-- expect: tx
COMMIT PREPARED 'foobar';
-- expect: tx
ROLLBACK PREPARED 'foobar';
-- expect: session
SET search_path TO my_schema, public;
-- expect: session
SET datestyle TO postgres, dmy;
-- expect: session
SET LOCAL search_path TO my_schema;
-- expect: session
SET ROLE paul;
-- expect: session
SET SESSION AUTHORIZATION 'paul';
-- expect: session
RESET timezone;
-- expect: session
RESET ALL;
-- expect: session
DISCARD ALL;
-- expect: session
DISCARD PLANS;
-- expect: session
DEALLOCATE PREPARE ALL;
-- expect: read reads=users,logs
PREPARE usrrptplan (int) AS SELECT * FROM users u, logs l WHERE u.usrid=$1 AND u.usrid=l.usrid AND l.date = $2;
-- expect: write writes=foo
PREPARE fooplan (int, text, bool, numeric) AS INSERT INTO foo VALUES($1, $2, $3, $4);
-- expect: write
EXECUTE fooplan(1, 'Hunter Valley', 't', 200.00);
-- expect: read volatile=yes
SELECT pg_sleep(1.5);
-- expect: read
SELECT 'a' || 'b', 2 + 3 * 4, 7 / 2, 2 ^ 10, |/ 25.0, @ -5.0;
-- expect: read
SHOW work_mem;
