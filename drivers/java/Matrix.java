// pgjdbc through pgtide in transaction pooling mode.
//
// prepareThreshold=1: every PreparedStatement is a server-side named statement ("S_1", "S_2", ...)
// from its first execution, kept in pgjdbc's per-connection statement cache, used from more
// connections than the pool has backends, so statements and session state must follow each
// client from backend to backend. pgjdbc runs everything (BEGIN, SET, DDL too) through the
// extended protocol.
//
// Usage: java -cp target/drivers/java:/usr/share/java/postgresql.jar Matrix [URL]
//        (or PGTIDE_URL=postgres://app:app-secret@127.0.0.1:PORT/app)
// Exits 1 with a message naming the failed check; prints one summary line on success.

import java.io.StringReader;
import java.io.StringWriter;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyIn;
import org.postgresql.copy.CopyManager;

public final class Matrix {
    static final String P = "jdbc"; // every object this program creates starts with this
    static final String SCHEMA = P + "_tenant";
    static final String ITEMS = P + "_items";
    static final String WHERE = P + "_where";
    static final String COPY_T = P + "_copy";

    static final int WORKERS = 8;
    static final int ITERATIONS = 12;
    static final int COPY_WORKERS = 3;
    static final int COPY_ROWS = 400;
    static final int SHORT_THREADS = 5;
    static final int SHORT_EACH = 10; // 5 x 10 = 50 short connections

    static final AtomicInteger prepared = new AtomicInteger();
    static final AtomicInteger commits = new AtomicInteger();
    static final AtomicInteger rollbacks = new AtomicInteger();
    static final AtomicInteger errors = new AtomicInteger();
    static final AtomicInteger pathChecks = new AtomicInteger();

    static String jdbcUrl;
    static String user;
    static String password;

    static final class Mismatch extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Mismatch(String message) {
            super(message);
        }

        Mismatch(String message, Throwable cause) {
            super(message, cause);
        }
    }

    static void eq(Object actual, Object expected, String what) {
        if (!Objects.equals(actual, expected)) {
            throw new Mismatch(what + ": expected " + expected + ", got " + actual);
        }
    }

    interface SqlAction {
        void run() throws SQLException, java.io.IOException;
    }

    static void expectError(String sqlstate, String what, SqlAction action) throws java.io.IOException {
        try {
            action.run();
        } catch (SQLException e) {
            eq(e.getSQLState(), sqlstate, what + ": SQLSTATE (" + e.getMessage() + ")");
            return;
        }
        throw new Mismatch(what + ": expected an error " + sqlstate + ", the statement succeeded");
    }

    /** A connection with server-side prepares from the first execution; extra URL parameters. */
    static Connection connect(String extraParams, String applicationName) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("prepareThreshold", "1");
        props.setProperty("connectTimeout", "30");
        props.setProperty("socketTimeout", "60");
        props.setProperty("sslmode", "disable");
        if (applicationName != null) {
            props.setProperty("ApplicationName", applicationName);
        }
        String url = jdbcUrl + (extraParams.isEmpty() ? "" : "?" + extraParams);
        return DriverManager.getConnection(url, props);
    }

    static Connection connect() throws SQLException {
        return connect("", null);
    }

    static String defaultPath;

    static void setup() throws SQLException {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("DROP SCHEMA IF EXISTS " + SCHEMA + " CASCADE");
            st.execute("DROP TABLE IF EXISTS public." + ITEMS + ", public." + WHERE + ", public." + COPY_T);
            st.execute("CREATE SCHEMA " + SCHEMA);
            st.execute("CREATE TABLE public." + ITEMS
                    + " (id int PRIMARY KEY, worker int NOT NULL, note text NOT NULL)");
            st.execute("CREATE TABLE public." + WHERE + " (w text NOT NULL)");
            st.execute("INSERT INTO public." + WHERE + " VALUES ('public')");
            st.execute("CREATE TABLE " + SCHEMA + "." + WHERE + " (w text NOT NULL)");
            st.execute("INSERT INTO " + SCHEMA + "." + WHERE + " VALUES ('tenant')");
            st.execute("CREATE TABLE public." + COPY_T
                    + " (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2) NOT NULL)");
            try (ResultSet rs = st.executeQuery("SELECT current_schemas(false)::text")) {
                rs.next();
                defaultPath = rs.getString(1);
            }
        }
    }

    static void checkSession(PreparedStatement session, String path, String where, String app, String what)
            throws SQLException {
        try (ResultSet rs = session.executeQuery()) {
            eq(rs.next(), true, what + ": a row");
            eq(rs.getString(1) + " | " + rs.getString(2) + " | " + rs.getString(3),
                    path + " | " + where + " | " + app,
                    what + ": current_schemas | table it resolves | application_name");
        }
    }

    static long scalarLong(PreparedStatement ps, String what) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            eq(rs.next(), true, what + ": a row");
            return rs.getLong(1);
        }
    }

    /**
     * One client. Workers with i % 4 == 1 call Connection.setSchema (SET SESSION search_path);
     * i % 4 == 3 connect with currentSchema (a search_path startup parameter) and RESET it halfway,
     * which returns to the startup value. Each worker has its own ApplicationName.
     */
    static void worker(int i, CyclicBarrier barrier) throws Exception {
        String app = P + "-worker-" + i;
        int kind = i % 4;
        // current_schemas(false) in the tenant
        String tenantPath = kind == 1 ? "{" + SCHEMA + "}" : "{" + SCHEMA + ",public}";
        String where = "worker " + i + " connecting";
        try (Connection c = connect(kind == 3 ? "currentSchema=" + SCHEMA + ",public" : "", app)) {
            where = "worker " + i + " before the first iteration";
            if (kind == 1) {
                c.setSchema(SCHEMA);
            }
            boolean inTenant = kind == 1 || kind == 3;
            PreparedStatement doubled = c.prepareStatement(
                    "SELECT ?::int * 2, ?::text || '#' || ?::text");
            PreparedStatement session = c.prepareStatement("SELECT current_schemas(false)::text, (SELECT w FROM "
                    + WHERE + "), current_setting('application_name')");
            PreparedStatement insert = c.prepareStatement(
                    "INSERT INTO public." + ITEMS + " (id, worker, note) VALUES (?, ?, ?)");
            PreparedStatement countWorker = c.prepareStatement(
                    "SELECT count(*), count(DISTINCT id) FROM public." + ITEMS + " WHERE worker = ?");
            PreparedStatement countId = c.prepareStatement(
                    "SELECT count(*) FROM public." + ITEMS + " WHERE id = ?");
            PreparedStatement divide = c.prepareStatement("SELECT 1 / ?::int");
            PreparedStatement plusOne = c.prepareStatement("SELECT ?::int + 1");
            barrier.await(60, TimeUnit.SECONDS);
            int committed = 0;
            for (int it = 0; it < ITERATIONS; it++) {
                where = "worker " + i + " iteration " + it;
                if (kind == 3 && it == ITERATIONS / 2) {
                    try (Statement st = c.createStatement()) {
                        st.execute("RESET search_path");
                    }
                }
                String path = inTenant ? tenantPath : defaultPath;
                String w = inTenant ? "tenant" : "public";

                doubled.setInt(1, it + i);
                doubled.setString(2, P);
                doubled.setString(3, Integer.toString(i));
                try (ResultSet rs = doubled.executeQuery()) {
                    eq(rs.next(), true, where + ": a row");
                    eq(rs.getInt(1) + " " + rs.getString(2), (it + i) * 2 + " " + P + "#" + i,
                            where + ": prepared select");
                }
                prepared.incrementAndGet();
                checkSession(session, path, w, app, where + ": session state");
                pathChecks.incrementAndGet();

                // A committed transaction, inserting with a batch.
                int base = i * 10000 + it * 10;
                c.setAutoCommit(false);
                for (int k = 0; k < 2; k++) {
                    insert.setInt(1, base + k);
                    insert.setInt(2, i);
                    insert.setString(3, "w" + i + "-it" + it + "-" + k);
                    insert.addBatch();
                }
                int[] updated = insert.executeBatch();
                eq(updated.length, 2, where + ": batch results");
                countWorker.setInt(1, i);
                eq(scalarLong(countWorker, where), (long) committed + 2,
                        where + ": rows seen inside the open transaction");
                checkSession(session, path, w, app, where + ": session state inside a transaction");
                c.commit();
                committed += 2;
                commits.incrementAndGet();

                // A rolled-back transaction leaves nothing behind.
                insert.setInt(1, base + 5);
                insert.setInt(2, i);
                insert.setString(3, "rolled back");
                eq(insert.executeUpdate(), 1, where + ": insert to roll back");
                c.rollback();
                countId.setInt(1, base + 5);
                eq(scalarLong(countId, where), 0L, where + ": a rolled-back row is visible");
                rollbacks.incrementAndGet();

                // An error inside a transaction, rollback, and the connection keeps working.
                if (it % 2 == 0) {
                    insert.setInt(1, base);
                    insert.setInt(2, i);
                    insert.setString(3, "duplicate");
                    expectError("23505", where + ": duplicate key", insert::executeUpdate);
                } else {
                    divide.setInt(1, 0);
                    expectError("22012", where + ": division by zero", () -> divide.executeQuery().close());
                }
                plusOne.setInt(1, 1);
                expectError("25P02", where + ": statement in an aborted transaction",
                        () -> plusOne.executeQuery().close());
                c.rollback();
                c.setAutoCommit(true);
                plusOne.setInt(1, 41);
                eq(scalarLong(plusOne, where), 42L, where + ": query after the failed transaction");
                errors.incrementAndGet();
            }
            where = "worker " + i + " after the last iteration";
            countWorker.setInt(1, i);
            try (ResultSet rs = countWorker.executeQuery()) {
                rs.next();
                eq(rs.getLong(1) + "/" + rs.getLong(2), committed + "/" + committed,
                        "worker " + i + ": committed rows at the end");
            }
        } catch (SQLException e) {
            throw new Mismatch(where + ": [" + e.getSQLState() + "] " + e.getMessage(), e);
        }
    }

    static void copyWorker(int c) throws Exception {
        int first = c * COPY_ROWS;
        StringBuilder in = new StringBuilder();
        StringBuilder expected = new StringBuilder();
        for (int k = 0; k < COPY_ROWS; k++) {
            String amount = String.format("%d.%02d", k / 4, (k % 4) * 25);
            in.append(first + k).append('\t').append("label-").append(c).append('-').append(k)
                    .append("\\twith tab").append('\t').append(amount).append('\n');
            expected.append(first + k).append(",label-").append(c).append('-').append(k)
                    .append("\twith tab,").append(amount).append('\n');
        }
        try (Connection conn = connect()) {
            CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
            long n = copy.copyIn("COPY public." + COPY_T + " (id, label, amount) FROM STDIN",
                    new StringReader(in.toString()));
            eq(n, (long) COPY_ROWS, "copy " + c + ": rows reported by copyIn");

            StringWriter out = new StringWriter();
            n = copy.copyOut("COPY (SELECT id, label, amount FROM public." + COPY_T + " WHERE id >= " + first
                    + " AND id < " + (first + COPY_ROWS) + " ORDER BY id) TO STDOUT (FORMAT csv)", out);
            eq(n, (long) COPY_ROWS, "copy " + c + ": rows reported by copyOut");
            eq(out.toString(), expected.toString(), "copy " + c + ": CSV from copyOut");

            // COPY in a transaction that rolls back.
            conn.setAutoCommit(false);
            copy.copyIn("COPY public." + COPY_T + " (id, label, amount) FROM STDIN",
                    new StringReader((1_000_000 + c) + "\trolled back\t0\n"));
            conn.rollback();
            conn.setAutoCommit(true);

            // The client abandons a COPY (CopyFail); the connection goes on.
            CopyIn abandoned = copy.copyIn("COPY public." + COPY_T + " (id, label, amount) FROM STDIN");
            byte[] row = ((2_000_000 + c) + "\tabandoned\t0\n").getBytes(StandardCharsets.UTF_8);
            abandoned.writeToCopy(row, 0, row.length);
            abandoned.cancelCopy();

            // The server fails a COPY (duplicate key); nothing of it is kept.
            expectError("23505", "copy " + c + ": COPY with a duplicate key",
                    () -> copy.copyIn("COPY public." + COPY_T + " (id, label, amount) FROM STDIN",
                            new StringReader((3_000_000 + c) + "\tkept?\t0\n" + first + "\tduplicate\t0\n")));

            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM public." + COPY_T + " WHERE id IN (?, ?, ?)")) {
                ps.setInt(1, 1_000_000 + c);
                ps.setInt(2, 2_000_000 + c);
                ps.setInt(3, 3_000_000 + c);
                eq(scalarLong(ps, "copy"), 0L, "copy " + c + ": rows from rolled-back, abandoned or failed COPYs");
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT ?::text")) {
                ps.setString(1, "still fine");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    eq(rs.getString(1), "still fine", "copy " + c + ": query after failed COPYs");
                }
            }
        } catch (SQLException e) {
            throw new Mismatch("copy " + c + ": [" + e.getSQLState() + "] " + e.getMessage(), e);
        } catch (java.io.IOException e) {
            throw new Mismatch("copy " + c + ": " + e, e);
        }
    }

    static void shortConnections(int t) throws Exception {
        for (int k = 0; k < SHORT_EACH; k++) {
            int n = t * 100 + k;
            try (Connection c = connect();
                    PreparedStatement ps = c.prepareStatement("SELECT ?::int, pg_backend_pid() > 0")) {
                ps.setInt(1, n);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    eq(rs.getInt(1) + " " + rs.getBoolean(2), n + " true", "short connection " + t + "/" + k);
                }
            } catch (SQLException e) {
                throw new Mismatch("short connection " + t + "/" + k + ": [" + e.getSQLState() + "] "
                        + e.getMessage(), e);
            }
        }
    }

    interface Task {
        void run(int index) throws Exception;
    }

    /** Runs `task` on `count` threads at once; rethrows the first failure, prints the others. */
    static void inParallel(int count, Task task) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(count);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                final int index = i;
                futures.add(pool.submit(() -> {
                    task.run(index);
                    return null;
                }));
            }
            Exception first = null;
            for (Future<?> f : futures) {
                try {
                    f.get(300, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    Exception cause = e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
                    if (first == null) {
                        first = cause;
                    } else {
                        System.err.println("also failed: " + cause.getMessage());
                    }
                }
            }
            if (first != null) {
                throw first;
            }
        } finally {
            pool.shutdownNow();
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args.length > 0 ? args[0] : System.getenv("PGTIDE_URL");
        if (url == null || url.isEmpty()) {
            System.err.println("usage: Matrix URL (or set PGTIDE_URL)");
            System.exit(2);
        }
        URI uri = new URI(url);
        String[] userInfo = uri.getRawUserInfo().split(":", 2);
        user = URLDecoder.decode(userInfo[0], StandardCharsets.UTF_8);
        password = userInfo.length > 1 ? URLDecoder.decode(userInfo[1], StandardCharsets.UTF_8) : "";
        jdbcUrl = "jdbc:postgresql://" + uri.getHost() + ":" + uri.getPort() + uri.getRawPath();

        long started = System.nanoTime();
        try {
            setup();
            CyclicBarrier barrier = new CyclicBarrier(WORKERS);
            inParallel(WORKERS, i -> worker(i, barrier));
            inParallel(COPY_WORKERS, Matrix::copyWorker);
            inParallel(SHORT_THREADS, Matrix::shortConnections);

            try (Connection c = connect(); Statement st = c.createStatement()) {
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM public." + ITEMS)) {
                    rs.next();
                    eq(rs.getLong(1), (long) WORKERS * ITERATIONS * 2, "committed rows of all workers");
                }
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM public." + COPY_T)) {
                    rs.next();
                    eq(rs.getLong(1), (long) COPY_WORKERS * COPY_ROWS, "rows kept by COPY");
                }
                st.execute("DROP SCHEMA " + SCHEMA + " CASCADE");
                st.execute("DROP TABLE public." + ITEMS + ", public." + WHERE + ", public." + COPY_T);
            }
        } catch (Mismatch e) {
            System.err.println("pgjdbc matrix FAILED: " + e.getMessage());
            System.exit(1);
        } catch (SQLException e) {
            System.err.println("pgjdbc matrix FAILED: [" + e.getSQLState() + "] " + e.getMessage());
            e.printStackTrace();
            System.exit(1);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        System.out.printf("pgjdbc %s (prepareThreshold=1): %d connections x %d iterations: %d prepared selects, "
                + "%d commits, %d rollbacks, %d errors rolled back, %d search_path/application_name checks "
                + "(setSchema, currentSchema, RESET); CopyManager in/out %d rows on %d connections "
                + "(+ rollback, CopyFail, duplicate key); %d short connections; %.1fs%n",
                org.postgresql.util.DriverInfo.DRIVER_VERSION, WORKERS, ITERATIONS, prepared.get(), commits.get(),
                rollbacks.get(), errors.get(), pathChecks.get(), COPY_WORKERS * COPY_ROWS, COPY_WORKERS,
                SHORT_THREADS * SHORT_EACH, seconds);
    }
}
