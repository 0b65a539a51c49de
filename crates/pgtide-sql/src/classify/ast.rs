//! The sqlparser path: statements the fast path does not cover. Parses one statement and walks
//! the tree for the relations it reads and writes and for anything that makes a query more than
//! a read (locking clauses, data-modifying CTEs, SELECT INTO).
//!
//! Callers guard the input first (`scan::MAX_DEPTH`, `MAX_OPERATORS`, `MAX_PARSE_LEN`): the
//! parser, the visitor and the tree's destructor all recurse.

use std::ops::ControlFlow;
use std::ptr;

use sqlparser::ast::{
    Expr, FromTable, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor,
    Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::names::{push_part, push_unique};

/// sqlparser's recursion budget (its default is 50), matched to `scan::MAX_DEPTH`.
pub(crate) const RECURSION_LIMIT: usize = 128;

/// What the tree says about one statement.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// A query (SELECT / VALUES / TABLE / WITH) that modifies nothing and locks no rows. Functions
    /// are not looked at here (the lexical scan does that).
    pub read_only: bool,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

/// Parses one statement; `None` when sqlparser cannot (or finds more than one statement).
pub(crate) fn parse(sql: &str) -> Option<Parsed> {
    let dialect = PostgreSqlDialect {};
    let statements = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .ok()?;
    let [statement] = statements.as_slice() else {
        return None;
    };
    let mut w = Walker {
        quotes_in_text: sql.contains('"'),
        ..Walker::default()
    };
    let _ = statement.visit(&mut w);
    Some(Parsed {
        read_only: matches!(statement, Statement::Query(_)) && !w.modifies,
        reads: w.reads,
        writes: w.writes,
    })
}

/// The canonical name of an object (empty when a part is not a plain identifier).
fn object_name(n: &ObjectName) -> String {
    let mut s = String::new();
    for part in &n.0 {
        match part {
            ObjectNamePart::Identifier(id) => {
                push_part(&mut s, &id.value, id.quote_style.is_some())
            }
            ObjectNamePart::Function(_) => return String::new(),
        }
    }
    s
}

/// `INTO` targets are expressions: a plain or compound identifier.
fn expr_name(e: &Expr) -> String {
    let mut s = String::new();
    match e {
        Expr::Identifier(id) => push_part(&mut s, &id.value, id.quote_style.is_some()),
        Expr::CompoundIdentifier(ids) => {
            for id in ids {
                push_part(&mut s, &id.value, id.quote_style.is_some());
            }
        }
        _ => {}
    }
    s
}

#[derive(Default)]
struct Walker {
    reads: Vec<String>,
    writes: Vec<String>,
    /// Anything but a plain read was seen (DML, DDL, INTO, locks, non-PostgreSQL clauses).
    modifies: bool,
    quotes_in_text: bool,
    /// Names of table factors already handled (so `pre_visit_relation` skips them).
    table_names: Vec<*const ObjectName>,
    /// Table factors that are the target of UPDATE / DELETE / MERGE.
    targets: Vec<*const TableFactor>,
    /// CTE bodies not visited yet, with the CTE names visible inside each.
    cte_bodies: Vec<(*const Query, Vec<String>)>,
    /// CTE names visible in the query being visited, innermost last.
    scopes: Vec<Vec<String>>,
}

impl Walker {
    fn write(&mut self, name: &ObjectName) {
        push_unique(&mut self.writes, object_name(name));
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
            return false;
        };
        let mut n = String::new();
        push_part(&mut n, &id.value, id.quote_style.is_some());
        self.scopes.last().is_some_and(|s| s.contains(&n))
    }

    /// `TABLE name` commands in a query body: sqlparser keeps only the names' text, not how
    /// they were quoted, so with any `"` in the statement the reads are not certain.
    fn table_commands(&mut self, e: &SetExpr) {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                SetExpr::Table(t) => {
                    if self.quotes_in_text {
                        self.modifies = true;
                    }
                    let mut s = String::new();
                    for part in [&t.schema_name, &t.table_name].into_iter().flatten() {
                        push_part(&mut s, part, false);
                    }
                    push_unique(&mut self.reads, s);
                }
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                _ => {}
            }
        }
    }
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if !matches!(s, Statement::Query(_)) {
            self.modifies = true;
        }
        match s {
            Statement::Update(u) => self.targets.push(&u.table.relation),
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from {
                    self.targets.push(&t.relation);
                }
                for n in &d.tables {
                    self.write(n);
                }
            }
            Statement::Merge(m) => self.targets.push(&m.table),
            Statement::Drop { names, table, .. } => {
                for n in names {
                    self.write(n);
                }
                if let Some(t) = table {
                    self.write(t);
                }
            }
            Statement::CreateIndex(ci) => {
                if let Some(n) = &ci.name {
                    self.write(n);
                }
            }
            Statement::AlterIndex { name, .. } | Statement::CreateSequence { name, .. } => {
                self.write(name);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            self.modifies = true;
        }
        self.table_commands(&q.body);
        let mut frame = match self.cte_bodies.iter().position(|(p, _)| ptr::eq(*p, q)) {
            Some(i) => self.cte_bodies.swap_remove(i).1,
            None => self.scopes.last().cloned().unwrap_or_default(),
        };
        if let Some(with) = &q.with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|c| {
                    let mut n = String::new();
                    push_part(
                        &mut n,
                        &c.alias.name.value,
                        c.alias.name.quote_style.is_some(),
                    );
                    n
                })
                .collect();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                // Earlier CTEs are visible in a body; with RECURSIVE, all of them (itself too).
                let upto = if with.recursive { names.len() } else { i };
                let mut visible = frame.clone();
                visible.extend(names[..upto].iter().cloned());
                self.cte_bodies.push((&*cte.query, visible));
            }
            frame.extend(names);
        }
        self.scopes.push(frame);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if let Some(into) = &s.into {
            self.modifies = true;
            for t in &into.targets {
                push_unique(&mut self.writes, expr_name(t));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args, .. } = tf {
            self.table_names.push(name);
            if args.is_some() {
                // `FROM f(x)`: a function (the lexical scan judged it), not a relation.
                return ControlFlow::Continue(());
            }
            if self.targets.iter().any(|p| ptr::eq(*p, tf)) {
                self.write(name);
            } else if !self.is_cte(name) {
                push_unique(&mut self.reads, object_name(name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
        // Relations outside table factors: INSERT targets, DDL objects, TRUNCATE, LOCK, ...
        if !self.table_names.iter().any(|p| ptr::eq(*p, name)) {
            self.write(name);
        }
        ControlFlow::Continue(())
    }
}
