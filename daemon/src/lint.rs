//! Row filters: parsing a policy's `rows` expression with a real SQL parser (sqlparser, ANSI
//! dialect, which Athena's Trino follows for identifiers and literals) into a [`RowFilter`], and
//! checking it against Lake Formation's restrictions on data cells filters and against the
//! table's columns.
//!
//! Lake Formation's rules, each a [`FilterError`]: the expression is under 2048 characters; a
//! condition made of comparisons (`= <> != < <= > >=`), `IN (…)`, `BETWEEN … AND …`, `LIKE`,
//! `IS [NOT] NULL`, joined by `AND`/`OR`/`NOT`; each comparison sets one column against
//! literals (no column-to-column comparison, no arithmetic); no functions, casts, subqueries
//! or typed literals; string comparisons are case-sensitive (`ILIKE` is refused, strings are
//! single-quoted literals); columns exist in the table and are not `date`, `timestamp` or
//! complex types; literals match the column's type. At most [`MAX_FILTERS_PER_TABLE`] filters
//! per principal and table is checked by `policy`.
//!
//! Owns the parsed form (the sqlparser AST in [`RowFilter::expr`] and the columns it reads),
//! which the `preview` feature evaluates with Arrow kernels. Does not own where filters come
//! from (`policy`) or how they reach Lake Formation (`govern`).

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};
use sqlparser::dialect::AnsiDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Longest expression Lake Formation accepts is under this many characters.
pub const MAX_EXPRESSION_CHARS: usize = 2048;
/// Most data cells filters one principal may hold on one table (per grant).
pub const MAX_FILTERS_PER_TABLE: usize = 10;

/// A parsed, restriction-checked row filter.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    /// The expression as written.
    pub text: String,
    /// Its syntax tree.
    pub expr: Expr,
    /// Columns it reads, as Glue names them (lowercase unless quoted).
    pub columns: BTreeSet<String>,
    /// Each comparison's column and the kind of literal it is compared with.
    comparisons: Vec<(String, Literal)>,
}

/// The kind of a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// `'text'`.
    String,
    /// `76`, `-1.5`.
    Number,
    /// `TRUE`/`FALSE`.
    Boolean,
}

/// Why a row filter cannot become a data cells filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Too long.
    #[error("{chars} characters; Lake Formation takes under {MAX_EXPRESSION_CHARS}")]
    TooLong {
        /// Its length.
        chars: usize,
    },
    /// Not an expression.
    #[error("not a SQL expression: {0}")]
    Syntax(String),
    /// Parsed, but outside what Lake Formation filters allow.
    #[error("{0}")]
    Unsupported(String),
    /// A column is missing or unusable, or compared with the wrong kind of literal.
    #[error("{0}")]
    Column(String),
}

enum Operand {
    Column(String),
    Literal(Literal),
    Condition,
}

impl RowFilter {
    /// Parses `text` and checks the rules that need no table.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let chars = text.chars().count();
        if chars >= MAX_EXPRESSION_CHARS {
            return Err(FilterError::TooLong { chars });
        }
        if text.trim().is_empty() {
            return Err(FilterError::Syntax("empty expression".into()));
        }
        let dialect = AnsiDialect {};
        // Comments are not part of the SQL Lake Formation documents for filters, and text
        // hidden in one is sent as written: refused.
        let tokens = Tokenizer::new(&dialect, text)
            .tokenize()
            .map_err(|e| FilterError::Syntax(e.to_string()))?;
        if tokens.iter().any(|t| {
            matches!(
                t,
                Token::Whitespace(
                    Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
                )
            )
        }) {
            return Err(FilterError::Unsupported(
                "comments (-- or /* */) are not allowed in a row filter".into(),
            ));
        }
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| FilterError::Syntax(e.to_string()))?;
        let expr = parser
            .parse_expr()
            .map_err(|e| FilterError::Syntax(e.to_string()))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(FilterError::Syntax(format!(
                "unexpected {} after the expression",
                next.token
            )));
        }
        let mut filter = Self {
            text: text.to_owned(),
            expr: expr.clone(),
            columns: BTreeSet::new(),
            comparisons: Vec::new(),
        };
        match filter.walk(&expr)? {
            Operand::Condition => Ok(filter),
            _ => Err(FilterError::Unsupported(
                "not a condition: a row filter is a comparison such as region_code = '76'".into(),
            )),
        }
    }

    /// Checks the filter against a table's columns (name → Athena type, partition keys
    /// included).
    pub fn check_columns(&self, table: &BTreeMap<String, String>) -> Result<(), FilterError> {
        for c in &self.columns {
            let Some(ty) = table.get(c) else {
                let known: Vec<&str> = table.keys().map(String::as_str).collect();
                return Err(FilterError::Column(format!(
                    "column {c:?} is not in the table (it has {})",
                    known.join(", ")
                )));
            };
            match kind_of(ty) {
                Kind::Temporal => {
                    return Err(FilterError::Column(format!(
                        "column {c:?} is {ty}: Lake Formation row filters cannot use date or timestamp columns"
                    )));
                }
                Kind::Other => {
                    return Err(FilterError::Column(format!(
                        "column {c:?} is {ty}: row filters compare only string, numeric and boolean columns"
                    )));
                }
                _ => {}
            }
        }
        for (c, lit) in &self.comparisons {
            let ty = table.get(c).map(String::as_str).unwrap_or_default();
            let ok = matches!(
                (kind_of(ty), lit),
                (Kind::String, Literal::String)
                    | (Kind::Number, Literal::Number)
                    | (Kind::Boolean, Literal::Boolean)
            );
            if !ok {
                let hint = match kind_of(ty) {
                    Kind::String => {
                        "compare it with a single-quoted string (compared case-sensitively)"
                    }
                    Kind::Number => "compare it with an unquoted number",
                    _ => "compare it with TRUE or FALSE",
                };
                return Err(FilterError::Column(format!(
                    "column {c:?} is {ty} but is compared with a {} literal; {hint}",
                    match lit {
                        Literal::String => "string",
                        Literal::Number => "number",
                        Literal::Boolean => "boolean",
                    }
                )));
            }
        }
        Ok(())
    }

    fn column(&mut self, name: String) -> Operand {
        self.columns.insert(name.clone());
        Operand::Column(name)
    }

    fn walk(&mut self, e: &Expr) -> Result<Operand, FilterError> {
        let unsupported = |what: &str| Err(FilterError::Unsupported(what.to_owned()));
        match e {
            Expr::Identifier(ident) => {
                let name = if ident.quote_style.is_some() {
                    ident.value.clone()
                } else {
                    ident.value.to_lowercase()
                };
                Ok(self.column(name))
            }
            Expr::CompoundIdentifier(parts) => unsupported(&format!(
                "qualified name {}: name the column alone",
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            )),
            Expr::Value(v) => literal(&v.value).map(Operand::Literal),
            Expr::Nested(inner) => self.walk(inner),
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => {
                    self.condition(expr, "NOT")?;
                    Ok(Operand::Condition)
                }
                UnaryOperator::Minus | UnaryOperator::Plus => match expr.as_ref() {
                    Expr::Value(v) if matches!(v.value, Value::Number(..)) => {
                        Ok(Operand::Literal(Literal::Number))
                    }
                    _ => unsupported("arithmetic is not allowed in a row filter"),
                },
                other => unsupported(&format!("operator {other} is not allowed in a row filter")),
            },
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    self.condition(left, &op.to_string())?;
                    self.condition(right, &op.to_string())?;
                    Ok(Operand::Condition)
                }
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => {
                    let l = self.walk(left)?;
                    let r = self.walk(right)?;
                    self.comparison(l, r, e)
                }
                other => unsupported(&format!(
                    "operator {other} is not allowed in a row filter (only comparisons, AND, OR, NOT)"
                )),
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => match self.walk(inner)? {
                Operand::Column(_) => Ok(Operand::Condition),
                _ => unsupported("IS NULL applies to a column"),
            },
            Expr::In {
                target: InTarget::Subquery(_),
                ..
            } => unsupported("subqueries are not allowed in a row filter"),
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                let Operand::Column(c) = self.walk(expr)? else {
                    return unsupported("IN applies to a column");
                };
                if list.is_empty() {
                    return unsupported("IN () needs at least one value");
                }
                for item in list {
                    match self.walk(item)? {
                        Operand::Literal(l) => self.comparisons.push((c.clone(), l)),
                        Operand::Column(_) => {
                            return unsupported(&format!(
                                "{e}: a column compared with another column"
                            ));
                        }
                        Operand::Condition => return unsupported("IN takes a list of literals"),
                    }
                }
                Ok(Operand::Condition)
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let Operand::Column(c) = self.walk(expr)? else {
                    return unsupported("BETWEEN applies to a column");
                };
                for bound in [low, high] {
                    match self.walk(bound)? {
                        Operand::Literal(l) => self.comparisons.push((c.clone(), l)),
                        _ => {
                            return unsupported(&format!(
                                "{e}: BETWEEN bounds must be literals (no column-to-column comparison)"
                            ));
                        }
                    }
                }
                Ok(Operand::Condition)
            }
            Expr::Like {
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if *any || escape_char.is_some() {
                    return unsupported("LIKE ANY and ESCAPE are not allowed in a row filter");
                }
                let Operand::Column(c) = self.walk(expr)? else {
                    return unsupported("LIKE applies to a column");
                };
                match self.walk(pattern)? {
                    Operand::Literal(Literal::String) => {
                        self.comparisons.push((c, Literal::String));
                        Ok(Operand::Condition)
                    }
                    _ => unsupported("the LIKE pattern must be a single-quoted string"),
                }
            }
            Expr::ILike { .. } => unsupported(
                "ILIKE compares case-insensitively; Lake Formation filters compare strings \
                 case-sensitively: use LIKE or = with the exact spelling",
            ),
            Expr::Function(f) => unsupported(&format!(
                "function {}(…) is not allowed: Lake Formation row filters take no functions",
                f.name
            )),
            Expr::Cast { .. } => unsupported("casts are not allowed in a row filter"),
            Expr::TypedString(_) => unsupported(
                "typed literals (DATE '…', TIMESTAMP '…') are not allowed: row filters cannot use date or timestamp columns",
            ),
            Expr::Subquery(_) | Expr::Exists { .. } => {
                unsupported("subqueries are not allowed in a row filter")
            }
            other => unsupported(&format!("{other} is not allowed in a row filter")),
        }
    }

    fn condition(&mut self, e: &Expr, op: &str) -> Result<(), FilterError> {
        match self.walk(e)? {
            Operand::Condition => Ok(()),
            _ => Err(FilterError::Unsupported(format!(
                "{op} joins conditions, and {e} is not one"
            ))),
        }
    }

    fn comparison(&mut self, l: Operand, r: Operand, e: &Expr) -> Result<Operand, FilterError> {
        match (l, r) {
            (Operand::Column(c), Operand::Literal(lit))
            | (Operand::Literal(lit), Operand::Column(c)) => {
                self.comparisons.push((c, lit));
                Ok(Operand::Condition)
            }
            (Operand::Column(_), Operand::Column(_)) => Err(FilterError::Unsupported(format!(
                "{e} compares a column with another column, which Lake Formation does not allow \
                 (a double-quoted \"value\" is a column name; quote strings with ')"
            ))),
            (Operand::Literal(_), Operand::Literal(_)) => Err(FilterError::Unsupported(format!(
                "{e} compares two literals; compare a column"
            ))),
            _ => Err(FilterError::Unsupported(format!(
                "{e}: a comparison takes a column and a literal"
            ))),
        }
    }
}

fn literal(v: &Value) -> Result<Literal, FilterError> {
    match v {
        Value::SingleQuotedString(_) => Ok(Literal::String),
        Value::Number(..) => Ok(Literal::Number),
        Value::Boolean(_) => Ok(Literal::Boolean),
        Value::Null => Err(FilterError::Unsupported(
            "NULL compares as unknown: use IS NULL or IS NOT NULL".into(),
        )),
        other => Err(FilterError::Unsupported(format!(
            "literal {other} is not allowed: use a single-quoted string, a number or TRUE/FALSE"
        ))),
    }
}

enum Kind {
    String,
    Number,
    Boolean,
    Temporal,
    Other,
}

fn kind_of(ty: &str) -> Kind {
    let base = ty.split('(').next().unwrap_or_default().trim();
    match base {
        "string" | "varchar" | "char" => Kind::String,
        "tinyint" | "smallint" | "int" | "integer" | "bigint" | "float" | "double" | "real"
        | "decimal" => Kind::Number,
        "boolean" => Kind::Boolean,
        "date" | "timestamp" => Kind::Temporal,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BTreeMap<String, String> {
        [
            ("region_code", "string"),
            ("los", "int"),
            ("cost", "decimal(12,2)"),
            ("urgent", "boolean"),
            ("admission_date", "date"),
            ("seen_at", "timestamp"),
            ("tags", "array<string>"),
            ("year", "string"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    }

    fn ok(text: &str) -> RowFilter {
        let f = RowFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        f.check_columns(&table())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        f
    }

    fn err(text: &str) -> String {
        match RowFilter::parse(text) {
            Err(e) => e.to_string(),
            Ok(f) => f
                .check_columns(&table())
                .expect_err(&format!("{text} was accepted"))
                .to_string(),
        }
    }

    #[test]
    fn accepted_filters() {
        let f = ok("region_code = '76'");
        assert_eq!(f.columns, BTreeSet::from(["region_code".to_owned()]));
        ok("region_code IN ('76', '11') AND los >= 2");
        ok("NOT (urgent = TRUE) OR cost BETWEEN 0 AND 100.5");
        ok("region_code LIKE '7%' AND region_code IS NOT NULL");
        ok("los > -1 and year <> '2020'");
        ok("REGION_CODE = '76'");
        ok("\"region_code\" = '76'");
        ok("'76' = region_code");
    }

    #[test]
    fn length_limit() {
        let long = format!("region_code = '{}'", "x".repeat(2040));
        assert!(err(&long).contains("under 2048"), "{}", err(&long));
        let just = format!("region_code = '{}'", "x".repeat(2047 - 16));
        assert_eq!(just.chars().count(), 2047);
        ok(&just);
    }

    #[test]
    fn comments_are_refused_but_not_dashes_in_strings() {
        assert!(err("region_code = '76' -- or everything").contains("comments"));
        assert!(err("region_code = '76' /* x */").contains("comments"));
        assert!(err("/* OR 1=1 */ region_code = '76'").contains("comments"));
        ok("region_code = '7--6'");
        ok("region_code = '/* 76 */'");
    }

    #[test]
    fn functions_subqueries_and_casts_are_refused() {
        assert!(err("lower(region_code) = '76'").contains("function lower"));
        assert!(err("region_code IN (SELECT x FROM t)").contains("subqueries"));
        assert!(err("CAST(los AS varchar) = '2'").contains("casts"));
        assert!(err("admission_date > DATE '2024-01-01'").contains("typed literals"));
    }

    #[test]
    fn column_to_column_comparison_is_refused() {
        assert!(err("los = cost").contains("another column"));
        assert!(err("region_code = \"76\"").contains("another column"));
        assert!(err("los BETWEEN cost AND 3").contains("bounds must be literals"));
        assert!(err("los IN (1, cost)").contains("another column"));
        assert!(err("1 = 1").contains("two literals"));
        assert!(err("los + 1 > 2").contains("operator +"));
    }

    #[test]
    fn date_timestamp_and_complex_columns_are_refused() {
        assert!(err("admission_date IS NULL").contains("date or timestamp"));
        assert!(err("seen_at IS NOT NULL").contains("date or timestamp"));
        assert!(err("tags IS NULL").contains("array<string>"));
    }

    #[test]
    fn string_comparisons_are_case_sensitive_literals() {
        assert!(err("region_code ILIKE '7%'").contains("case-sensitively"));
        assert!(err("region_code = 76").contains("single-quoted string"));
        assert!(err("los = '2'").contains("unquoted number"));
        assert!(err("urgent = 'yes'").contains("TRUE or FALSE"));
        assert!(err("region_code LIKE 7").contains("single-quoted"));
    }

    #[test]
    fn columns_must_exist_and_expressions_must_be_conditions() {
        assert!(err("regoin_code = '76'").contains("not in the table"));
        assert!(err("\"REGION_CODE\" = '76'").contains("not in the table"));
        assert!(err("t.region_code = '76'").contains("qualified name"));
        assert!(err("region_code").contains("not a condition"));
        assert!(err("region_code = '76' AND los").contains("not one"));
        assert!(err("region_code = NULL").contains("IS NULL"));
        assert!(err("region_code = '76';").contains("after the expression"));
        assert!(err("region_code = ").contains("not a SQL expression"));
        assert!(err("   ").contains("empty"));
    }
}
