#!/usr/bin/env node
// node-postgres (pg) through pgtide in transaction pooling mode.
//
// Every parameterised statement is a NAMED prepared statement ({ name, text, values }): pg sends
// Parse once per connection and only Bind/Execute after that, from more connections than the
// pool has backends, so statements and session state must follow each client from backend to
// backend. node-postgres has no COPY without the separate pg-copy-streams package: no COPY here.
//
// Usage: node matrix.js [URL]   (or PGTIDE_URL=postgres://app:app-secret@127.0.0.1:PORT/app)
// Exits 1 with a message naming the failed check; prints one summary line on success.
'use strict';

const { Client, Pool } = require('pg');
const pgVersion = require('pg/package.json').version;

const P = 'nodepg'; // every object this script creates starts with this
const SCHEMA = `${P}_tenant`;
const ITEMS = `${P}_items`;
const WHERE = `${P}_where`;
const TENANT_PATH = `${SCHEMA}, public`;
const TENANT_SCHEMAS = `{${SCHEMA},public}`; // current_schemas(false) with TENANT_PATH

const WORKERS = 8;
const ITERATIONS = 12;
const SHORT_TASKS = 5;
const SHORT_EACH = 10; // 5 x 10 = 50 short connections
const POOL_SIZE = 4;
const POOL_QUERIES = 40;
const TIMEOUT_MS = 30000;

class Mismatch extends Error {}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Mismatch(`${what}: expected ${e}, got ${a}`);
}

async function connect(url, extra = {}) {
  const client = new Client({
    connectionString: url,
    connectionTimeoutMillis: TIMEOUT_MS,
    query_timeout: TIMEOUT_MS,
    ...extra,
  });
  await client.connect();
  return client;
}

async function expectError(sqlstate, what, promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    eq(e.code, sqlstate, `${what}: SQLSTATE (${e.message})`);
    return;
  }
  throw new Mismatch(`${what}: expected an error ${sqlstate}, the statement succeeded`);
}

// The named statements every worker uses; pg prepares each once per connection.
const Q = {
  doubled: (n, tag, i) => ({
    name: 'doubled',
    text: "SELECT $1::int * 2 AS doubled, $2::text || '#' || $3::text AS tag",
    values: [n, tag, i],
  }),
  session: () => ({
    name: 'session',
    text: `SELECT current_schemas(false)::text AS path, (SELECT w FROM ${WHERE}) AS w,
                  current_setting('application_name') AS app`,
    values: [],
  }),
  insert: (id, worker, note) => ({
    name: 'insert_item',
    text: `INSERT INTO public.${ITEMS} (id, worker, note) VALUES ($1, $2, $3)`,
    values: [id, worker, note],
  }),
  countWorker: (worker) => ({
    name: 'count_worker',
    text: `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM public.${ITEMS} WHERE worker = $1`,
    values: [worker],
  }),
  countId: (id) => ({
    name: 'count_id',
    text: `SELECT count(*)::int AS n FROM public.${ITEMS} WHERE id = $1`,
    values: [id],
  }),
  divide: (d) => ({ name: 'divide', text: 'SELECT 1 / $1::int AS q', values: [d] }),
  plusOne: (n) => ({ name: 'plus_one', text: 'SELECT $1::int + 1 AS n', values: [n] }),
};

const counts = { prepared: 0, commits: 0, rollbacks: 0, errors: 0, pathChecks: 0 };

async function setup(url) {
  const c = await connect(url);
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await c.query(`DROP TABLE IF EXISTS public.${ITEMS}, public.${WHERE}`);
    // Simple protocol, several statements in one string.
    await c.query(`
      CREATE SCHEMA ${SCHEMA};
      CREATE TABLE public.${ITEMS} (id int PRIMARY KEY, worker int NOT NULL, note text NOT NULL);
      CREATE TABLE public.${WHERE} (w text NOT NULL);
      INSERT INTO public.${WHERE} VALUES ('public');
      CREATE TABLE ${SCHEMA}.${WHERE} (w text NOT NULL);
      INSERT INTO ${SCHEMA}.${WHERE} VALUES ('tenant');`);
    const r = await c.query("SELECT current_schemas(false)::text AS path");
    return r.rows[0].path;
  } finally {
    await c.end();
  }
}

async function checkSession(c, path, where, app, what) {
  const r = await c.query(Q.session());
  eq(r.rows[0], { path, w: where, app }, `${what}: (current_schemas, table it resolves, application_name)`);
}

// Odd workers SET their own search_path; workers 3 and 7 go back with SET ... TO DEFAULT halfway.
// Each worker has its own application_name (a startup parameter).
async function worker(url, i, defaultPath, start) {
  const app = `${P}-worker-${i}`;
  let where = `worker ${i} connecting`;
  const c = await connect(url, { application_name: app });
  try {
    where = `worker ${i} before the first iteration`;
    let inTenant = i % 2 === 1;
    if (inTenant) await c.query(`SET search_path TO ${TENANT_PATH}`);
    await start;
    let committed = 0;
    for (let it = 0; it < ITERATIONS; it++) {
      where = `worker ${i} iteration ${it}`;
      if (i % 4 === 3 && it === ITERATIONS / 2) {
        await c.query('SET search_path TO DEFAULT');
        inTenant = false;
      }
      const path = inTenant ? TENANT_SCHEMAS : defaultPath;
      const w = inTenant ? 'tenant' : 'public';

      let r = await c.query(Q.doubled(it + i, P, String(i)));
      eq(r.rows[0], { doubled: (it + i) * 2, tag: `${P}#${i}` }, `${where}: named prepared select`);
      counts.prepared++;
      await checkSession(c, path, w, app, `${where}: session state`);
      counts.pathChecks++;

      // A committed transaction.
      const base = i * 10000 + it * 10;
      await c.query('BEGIN');
      await c.query(Q.insert(base, i, `w${i}-it${it}-0`));
      await c.query(Q.insert(base + 1, i, `w${i}-it${it}-1`));
      r = await c.query(Q.countWorker(i));
      eq(r.rows[0].n, committed + 2, `${where}: rows seen inside the open transaction`);
      await checkSession(c, path, w, app, `${where}: session state inside a transaction`);
      await c.query('COMMIT');
      committed += 2;
      counts.commits++;

      // A rolled-back transaction leaves nothing behind.
      await c.query('BEGIN');
      await c.query(Q.insert(base + 5, i, 'rolled back'));
      await c.query('ROLLBACK');
      r = await c.query(Q.countId(base + 5));
      eq(r.rows[0].n, 0, `${where}: a rolled-back row is visible`);
      counts.rollbacks++;

      // An error inside a transaction, ROLLBACK, and the connection keeps working.
      await c.query('BEGIN');
      if (it % 2 === 0) {
        await expectError('23505', `${where}: duplicate key`, c.query(Q.insert(base, i, 'duplicate')));
      } else {
        await expectError('22012', `${where}: division by zero`, c.query(Q.divide(0)));
      }
      await expectError('25P02', `${where}: statement in an aborted transaction`, c.query(Q.plusOne(1)));
      await c.query('ROLLBACK');
      r = await c.query(Q.plusOne(41));
      eq(r.rows[0].n, 42, `${where}: query after the failed transaction`);
      counts.errors++;
    }
    where = `worker ${i} after the last iteration`;
    const r = await c.query(Q.countWorker(i));
    eq(r.rows[0], { n: committed, d: committed }, `worker ${i}: committed rows at the end`);
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    throw new Mismatch(`${where}: ${e.code ? `[${e.code}] ` : ''}${e.message}`);
  } finally {
    await c.end();
  }
}

async function shortConnections(url, t) {
  for (let k = 0; k < SHORT_EACH; k++) {
    const c = await connect(url);
    try {
      const n = t * 100 + k;
      const r = await c.query({
        name: 'short',
        text: 'SELECT $1::int AS n, pg_backend_pid() > 0 AS pid',
        values: [n],
      });
      eq(r.rows[0], { n, pid: true }, `short connection ${t}/${k}`);
    } finally {
      await c.end();
    }
  }
}

// pg's own Pool: named statements on whichever pooled connection runs them.
async function poolQueries(url) {
  const pool = new Pool({
    connectionString: url,
    max: POOL_SIZE,
    connectionTimeoutMillis: TIMEOUT_MS,
    query_timeout: TIMEOUT_MS,
  });
  try {
    await Promise.all(
      Array.from({ length: POOL_QUERIES }, async (_, k) => {
        const r = await pool.query({ name: 'pool_triple', text: 'SELECT $1::int * 3 AS n', values: [k] });
        eq(r.rows[0].n, k * 3, `pool query ${k}`);
      })
    );
  } finally {
    await pool.end();
  }
}

async function allOf(promises) {
  const results = await Promise.allSettled(promises);
  const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  for (const f of failures.slice(1)) console.error(`also failed: ${f.message}`);
  if (failures.length) throw failures[0];
}

async function main() {
  const url = process.argv[2] || process.env.PGTIDE_URL;
  if (!url) {
    console.error('usage: node matrix.js URL (or set PGTIDE_URL)');
    return 2;
  }
  const started = Date.now();
  const defaultPath = await setup(url);

  let go;
  const start = new Promise((resolve) => (go = resolve));
  const workers = Array.from({ length: WORKERS }, (_, i) => worker(url, i, defaultPath, start));
  go();
  await allOf(workers);
  await allOf(Array.from({ length: SHORT_TASKS }, (_, t) => shortConnections(url, t)));
  await poolQueries(url);

  const c = await connect(url);
  try {
    const r = await c.query(`SELECT count(*)::int AS n FROM public.${ITEMS}`);
    eq(r.rows[0].n, WORKERS * ITERATIONS * 2, 'committed rows of all workers');
    await c.query(`DROP SCHEMA ${SCHEMA} CASCADE; DROP TABLE public.${ITEMS}, public.${WHERE}`);
  } finally {
    await c.end();
  }

  console.log(
    `node-postgres ${pgVersion} (named statements): ${WORKERS} connections x ${ITERATIONS} iterations: ` +
      `${counts.prepared} prepared selects, ${counts.commits} commits, ${counts.rollbacks} rollbacks, ` +
      `${counts.errors} errors rolled back, ${counts.pathChecks} search_path/application_name checks; ` +
      `no COPY (needs pg-copy-streams); ${SHORT_TASKS * SHORT_EACH} short connections; ` +
      `${POOL_QUERIES} pg.Pool queries; ${((Date.now() - started) / 1000).toFixed(1)}s`
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`node-postgres matrix FAILED: ${e instanceof Mismatch ? '' : `${e.code || ''} `}${e.message}`);
    if (!(e instanceof Mismatch)) console.error(e.stack);
    process.exit(1);
  }
);
