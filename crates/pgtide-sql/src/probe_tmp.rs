#[test]
fn timing() {
    let qs = ["SELECT id, name, email FROM users WHERE id = $1 AND tenant_id = $2 ORDER BY created_at DESC LIMIT 10",
              "INSERT INTO events (a, b, c) VALUES ($1, $2, $3)", "SET search_path TO public, \"My Schema\"",
              "SELECT pg_advisory_lock(42)"];
    for q in qs {
        let n = 200_000;
        let t = std::time::Instant::now();
        let mut k = 0;
        for _ in 0..n {
            k += crate::session_effects(std::hint::black_box(q)).len();
        }
        println!(
            "{:>6.0} ns  {k} {q}",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    let big = "SELECT ".to_string() + &"col_name, ".repeat(400) + "1 FROM t";
    let t = std::time::Instant::now();
    for _ in 0..20_000 {
        std::hint::black_box(crate::session_effects(std::hint::black_box(&big)));
    }
    println!(
        "{:>6.0} ns  {} bytes",
        t.elapsed().as_nanos() as f64 / 20_000.0,
        big.len()
    );
}
