//! TOML text → `Config`, with every problem named by its key path.
//!
//! serde stops at the first error, so after each one the offending key is removed from the
//! document and deserialization is retried: one run reports every unknown key and bad value.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::schema::Config;
use crate::Problem;

const MAX_PROBLEMS: usize = 100;

/// Parses TOML text into a `Config` (no semantic validation). `origin` names the text in problems.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let (_, syntax) = DeTable::parse_recoverable(text);
    for e in &syntax {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        problems.push(Problem::new(
            origin,
            format!("line {line}, column {col}"),
            format!("invalid TOML: {}", e.message()),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return Err(vec![Problem::new(origin, "", e.message().to_string())]),
    };
    let mut found: Vec<(Vec<Seg>, Problem)> = Vec::new();
    let mut current = text.to_string();
    loop {
        let err = match toml::from_str::<Config>(&current) {
            Ok(cfg) if found.is_empty() => return Ok(cfg),
            Ok(_) => break,
            Err(e) => e,
        };
        let path = err
            .span()
            .and_then(|s| path_at(&current, s))
            .unwrap_or_default();
        let msg = err.message();
        if let Some(field) = backticked(msg, "missing field `") {
            let mut p = path.clone();
            p.push(Seg::Key(field.to_string()));
            // A required key we removed after reporting its bad value is not news.
            if !found.iter().any(|(q, _)| *q == p) {
                let problem = Problem::new(origin, render(&p), "required key is missing");
                found.push((path, problem));
            }
            break;
        }
        let reason = match backticked(msg, "unknown field `") {
            Some(_) => match msg.split_once(", expected ") {
                Some((_, expected)) => format!("unknown key (expected {expected})"),
                None => "unknown key".to_string(),
            },
            None => msg.trim().to_string(),
        };
        found.push((path.clone(), Problem::new(origin, render(&path), reason)));
        if found.len() >= MAX_PROBLEMS || !remove(&mut table, &path) {
            break;
        }
        current = match toml::to_string(&table) {
            Ok(s) => s,
            Err(_) => break,
        };
    }
    // Retries see a re-serialized document: report in the order of the original text.
    if let Ok(root) = DeTable::parse(text) {
        let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        found.sort_by_key(|(path, _)| offset_of(&root, path));
    }
    Err(found.into_iter().map(|(_, p)| p).collect())
}

/// Reads and parses a file, then validates it: every problem at once.
pub fn load_file(path: &Path) -> Result<Config, Vec<Problem>> {
    let origin = path.display().to_string();
    let cfg = parse_file(path)?;
    let problems = cfg.validate(&origin);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// Reads and parses a file without validating it.
pub(crate) fn parse_file(path: &Path) -> Result<Config, Vec<Problem>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            &origin,
            "",
            format!("cannot read the file: {e}"),
        )]
    })?;
    parse_str(&text, &origin)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The text between `prefix` and the next backtick, e.g. the field of "missing field `x`".
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    msg.strip_prefix(prefix)?.split('`').next()
}

fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key path of the deepest key or value whose span holds the error position.
fn path_at(text: &str, span: Range<usize>) -> Option<Vec<Seg>> {
    let root = DeTable::parse(text).ok()?;
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    find(&root, span.start, &mut Vec::new())
}

/// Where the deepest existing part of `path` starts in the document.
fn offset_of(root: &Spanned<DeValue<'_>>, path: &[Seg]) -> usize {
    let mut cur = root;
    let mut at = 0;
    for seg in path {
        match (seg, cur.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => {
                match t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                {
                    Some((key, v)) => {
                        at = key.span().start;
                        cur = v;
                    }
                    None => break,
                }
            }
            (Seg::Index(i), DeValue::Array(a)) => match a.get(*i) {
                Some(v) => {
                    at = at.max(v.span().start);
                    cur = v;
                }
                None => break,
            },
            _ => break,
        }
    }
    at
}

fn find(v: &Spanned<DeValue<'_>>, pos: usize, path: &mut Vec<Seg>) -> Option<Vec<Seg>> {
    let holds = |r: Range<usize>| r.start <= pos && pos < r.end.max(r.start + 1);
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, val) in t.iter() {
                path.push(Seg::Key(k.get_ref().to_string()));
                let hit = if holds(k.span()) {
                    Some(path.clone())
                } else {
                    find(val, pos, path)
                };
                path.pop();
                if hit.is_some() {
                    return hit;
                }
            }
        }
        DeValue::Array(a) => {
            for (i, val) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                let hit = find(val, pos, path);
                path.pop();
                if hit.is_some() {
                    return hit;
                }
            }
        }
        _ => {}
    }
    holds(v.span()).then(|| path.clone())
}

/// Removes the innermost key of `path` (a bad array element takes its whole array with it).
fn remove(table: &mut toml::Table, path: &[Seg]) -> bool {
    let Some(last) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let (parents, Seg::Key(key)) = (&path[..last], &path[last]) else {
        return false;
    };
    let mut cur = table;
    let mut i = 0;
    while i < parents.len() {
        let Seg::Key(k) = &parents[i] else {
            return false;
        };
        let Some(mut v) = cur.get_mut(k) else {
            return false;
        };
        i += 1;
        while let Some(Seg::Index(idx)) = parents.get(i) {
            v = match v {
                toml::Value::Array(a) => match a.get_mut(*idx) {
                    Some(x) => x,
                    None => return false,
                },
                _ => return false,
            };
            i += 1;
        }
        cur = match v {
            toml::Value::Table(t) => t,
            _ => return false,
        };
    }
    cur.remove(key).is_some()
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
