//! The annotated corpus (tests/corpus/*.sql, format in tests/corpus/README.md): every statement
//! gets the classification it is annotated with, and no statement annotated as a write is ever
//! classified as a read.

use std::path::Path;

use pgtide_sql::{classify_uncached, Classification, StatementKind};

struct Case {
    file: String,
    line: usize,
    expect: String,
    sql: String,
}

fn load() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read tests/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read corpus file");
        let mut current: Option<Case> = None;
        for (i, line) in text.lines().enumerate() {
            if let Some(expect) = line.strip_prefix("-- expect:") {
                cases.extend(current.take());
                current = Some(Case {
                    file: file.clone(),
                    line: i + 1,
                    expect: expect.trim().to_string(),
                    sql: String::new(),
                });
            } else if let Some(c) = current.as_mut() {
                if !line.starts_with("-- ") || !c.sql.is_empty() {
                    c.sql.push_str(line);
                    c.sql.push('\n');
                }
            }
        }
        cases.extend(current);
    }
    for c in &mut cases {
        c.sql = c.sql.trim_end().to_string();
    }
    cases
}

/// What is wrong with `got` for annotation `expect` (None: all good).
fn check(expect: &str, got: &Classification) -> Option<String> {
    let mut words = expect.split_whitespace();
    let kind = words.next().unwrap_or("");
    let kind_ok = match kind {
        "read" => got.kind == StatementKind::Read,
        "write" | "conservative" => got.kind == StatementKind::Write,
        "tx" => matches!(got.kind, StatementKind::Transaction(_)),
        "session" => got.kind == StatementKind::Session,
        other => return Some(format!("unknown kind {other:?}")),
    };
    let mut problems = Vec::new();
    if !kind_ok {
        problems.push(format!("kind {:?}", got.kind));
    }
    let list = |v: &str| -> Vec<String> {
        if v == "-" {
            Vec::new()
        } else {
            v.split(',').map(str::to_string).collect()
        }
    };
    for w in words {
        if let Some(v) = w.strip_prefix("reads=") {
            if got.reads != list(v) {
                problems.push(format!("reads {:?}", got.reads));
            }
        } else if let Some(v) = w.strip_prefix("writes=") {
            if got.writes != list(v) {
                problems.push(format!("writes {:?}", got.writes));
            }
        } else if let Some(v) = w.strip_prefix("volatile=") {
            if got.volatile != (v == "yes") {
                problems.push(format!("volatile {}", got.volatile));
            }
        } else {
            problems.push(format!("bad annotation {w:?}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

#[test]
fn every_statement_is_classified_as_annotated() {
    let cases = load();
    assert!(cases.len() >= 300, "corpus has only {} cases", cases.len());
    let mut report = Vec::new();
    let mut files: Vec<&str> = cases.iter().map(|c| c.file.as_str()).collect();
    files.dedup();
    for file in files {
        let in_file: Vec<&Case> = cases.iter().filter(|c| c.file == file).collect();
        let wrong: Vec<String> = in_file
            .iter()
            .filter_map(|c| {
                let got = classify_uncached(&c.sql, &[]);
                check(&c.expect, &got).map(|p| {
                    format!(
                        "  {}:{} expected {} got {}: {}",
                        c.file, c.line, c.expect, p, c.sql
                    )
                })
            })
            .collect();
        if !wrong.is_empty() {
            report.push(format!(
                "{file}: {} of {} cases wrong\n{}",
                wrong.len(),
                in_file.len(),
                wrong.join("\n")
            ));
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

#[test]
fn no_write_is_ever_a_read() {
    let cases = load();
    let writes: Vec<&Case> = cases
        .iter()
        .filter(|c| c.expect.starts_with("write") || c.expect.starts_with("conservative"))
        .collect();
    assert!(writes.len() >= 100, "only {} write cases", writes.len());
    let misrouted: Vec<String> = writes
        .iter()
        .filter(|c| classify_uncached(&c.sql, &[]).kind == StatementKind::Read)
        .map(|c| format!("  {}:{}: {}", c.file, c.line, c.sql))
        .collect();
    assert!(
        misrouted.is_empty(),
        "{} of {} write cases classified Read:\n{}",
        misrouted.len(),
        writes.len(),
        misrouted.join("\n")
    );
}
