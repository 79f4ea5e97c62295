//! Row-filter evaluation on Arrow record batches: what Lake Formation's data cells filter lets
//! through, computed locally for `preview`.
//!
//! A [`RowFilter`] (parsed and checked by `lint`, the same sqlparser AST) is compiled against a
//! batch schema into a small tree ([`Evaluator::new`]): every column is resolved and typed,
//! every literal converted to the column's type *exactly*, and anything outside the subset Lake
//! Formation accepts is an [`EvalError`], never a guess. [`Evaluator::evaluate`] then runs Arrow
//! compute kernels (comparison, `LIKE`, Kleene `AND`/`OR`, `NOT`, null checks) and
//! [`Evaluator::select`] keeps the rows whose condition is TRUE.
//!
//! Semantics, as Lake Formation documents them and Athena (Trino) evaluates them:
//! - three-valued logic: a comparison with a NULL is unknown; `AND`/`OR` are Kleene's; `NOT`
//!   of unknown is unknown; a row is visible only when the whole condition is TRUE;
//! - `IN (a, b)` is `= a OR = b`, `BETWEEN a AND b` is `>= a AND <= b`, each with `NOT`;
//! - strings compare case-sensitively by code point; `LIKE` has `%` and `_` and no escape
//!   character (a backslash is an ordinary character);
//! - numbers compare exactly: `total_cost > 100.005` on a `decimal(12,2)` column is
//!   `total_cost >= 100.01`, `los = 2.5` on an integer column matches nothing; no floating
//!   point is involved except for `double`/`float` columns;
//! - `IS [NOT] NULL` is refused on partition columns, and `date`/`timestamp` columns (and the
//!   typed literals they would need) are refused, as Lake Formation refuses them.
//!
//! Does not own: parsing and the table-level lint (`lint`), which columns a principal sees or
//! reading Parquet (`preview`).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, LargeStringArray, RecordBatch, Scalar, StringArray,
    StringViewArray,
};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{ArrowError, DataType, Schema};
use arrow_select::filter::{filter_record_batch, prep_null_mask_filter};
use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};

use crate::lint::RowFilter;

/// Why a filter cannot be evaluated on a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A column the filter reads is not in the data.
    #[error("column {0:?} is not in the data")]
    MissingColumn(String),
    /// The expression, a column's type or a literal is outside what Lake Formation accepts.
    #[error("{0}")]
    Unsupported(String),
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(String),
}

impl From<ArrowError> for EvalError {
    fn from(e: ArrowError) -> Self {
        Self::Arrow(e.to_string())
    }
}

/// Comparison operators, normalised to `column OP literal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Op {
    /// The operator with its operands swapped (`'76' = c` is `c = '76'`, `1 < c` is `c > 1`).
    fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
            other => other,
        }
    }
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    /// An exact decimal number: unscaled value and scale (`-1.50` is (-150, 2)).
    Num(i128, u32, String),
    Bool(bool),
}

/// The compiled tree.
#[derive(Debug, Clone)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    IsNull {
        col: usize,
        negated: bool,
    },
    Cmp {
        col: usize,
        op: Op,
        scalar: ArrayRef,
    },
    /// A comparison whose answer is the same for every non-null value (a literal outside the
    /// column's range or not representable in it): `value` where the column is not null.
    Const {
        col: usize,
        value: bool,
    },
    Like {
        col: usize,
        pattern: String,
        negated: bool,
    },
}

/// A filter compiled against one schema.
#[derive(Debug, Clone)]
pub struct Evaluator {
    root: Node,
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Unsupported(what.into()))
}

/// Parses a numeric literal's text (`76`, `100.5`, `.5`) into an exact decimal.
fn parse_number(text: &str, negative: bool) -> Result<Lit, EvalError> {
    if text.contains(['e', 'E']) {
        return unsupported(format!(
            "number {text}: exponent notation is a double literal; write the decimal digits"
        ));
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return unsupported(format!("{text:?} is not a number"));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 38 || frac.len() > 38 {
        return unsupported(format!(
            "number {text} has more than 38 digits, more than any column holds"
        ));
    }
    let mut v: i128 = significant.parse().unwrap_or(0);
    if negative {
        v = -v;
    }
    let scale = u32::try_from(frac.len()).unwrap_or(38);
    let shown = if negative {
        format!("-{text}")
    } else {
        text.to_owned()
    };
    Ok(Lit::Num(v, scale, shown))
}

fn literal(e: &Expr) -> Result<Option<Lit>, EvalError> {
    match e {
        Expr::Nested(inner) => literal(inner),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Ok(Some(Lit::Str(s.clone()))),
            Value::Number(n, _) => parse_number(n, false).map(Some),
            Value::Boolean(b) => Ok(Some(Lit::Bool(*b))),
            other => unsupported(format!("literal {other} is not allowed in a row filter")),
        },
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => parse_number(n, *op == UnaryOperator::Minus).map(Some),
                _ => unsupported(format!("{e}: a sign applies to a number")),
            },
            _ => unsupported(format!("{e}: arithmetic is not allowed in a row filter")),
        },
        _ => Ok(None),
    }
}

/// The column an operand names, as Glue names it (lowercase unless quoted).
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Nested(inner) => column_name(inner),
        Expr::Identifier(ident) => Some(if ident.quote_style.is_some() {
            ident.value.clone()
        } else {
            ident.value.to_lowercase()
        }),
        _ => None,
    }
}

/// What a comparison of an integer-valued column (integers, or decimals as unscaled values)
/// with an exact literal comes to: a comparison with an integer of the column's range, or the
/// same answer for every value.
enum Plan {
    Cmp(Op, i128),
    Const(bool),
}

/// `x OP lit` for integer `x` in `[min, max]` whose literal is `lit_unscaled / 10^lit_scale`
/// and whose own values are unscaled at `scale`.
fn integer_plan(op: Op, lit: i128, lit_scale: u32, scale: u32, min: i128, max: i128) -> Plan {
    // The literal at the column's scale: floor and ceiling (equal when exact).
    let (floor, ceil) = if lit_scale <= scale {
        let v = 10i128
            .checked_pow(scale - lit_scale)
            .and_then(|m| lit.checked_mul(m))
            .unwrap_or(if lit < 0 { i128::MIN } else { i128::MAX });
        (v, v)
    } else {
        let d = 10i128.checked_pow(lit_scale - scale).unwrap_or(i128::MAX);
        let q = lit.div_euclid(d);
        if lit.rem_euclid(d) == 0 {
            (q, q)
        } else {
            (q, q.saturating_add(1))
        }
    };
    let exact = floor == ceil;
    let at_most = |h: i128| {
        if h >= max {
            Plan::Const(true)
        } else if h < min {
            Plan::Const(false)
        } else {
            Plan::Cmp(Op::LtEq, h)
        }
    };
    let at_least = |l: i128| {
        if l <= min {
            Plan::Const(true)
        } else if l > max {
            Plan::Const(false)
        } else {
            Plan::Cmp(Op::GtEq, l)
        }
    };
    match op {
        Op::Eq | Op::NotEq => {
            let equal_possible = exact && (min..=max).contains(&floor);
            match (op, equal_possible) {
                (Op::Eq, true) => Plan::Cmp(Op::Eq, floor),
                (Op::NotEq, true) => Plan::Cmp(Op::NotEq, floor),
                (Op::Eq, false) => Plan::Const(false),
                _ => Plan::Const(true),
            }
        }
        Op::Lt => at_most(ceil.saturating_sub(1)),
        Op::LtEq => at_most(floor),
        Op::Gt => at_least(floor.saturating_add(1)),
        Op::GtEq => at_least(ceil),
    }
}

/// A one-value array of `ty` holding the integer `v` (in range: checked by the plan).
fn integer_scalar(ty: &DataType, v: i128) -> Result<ArrayRef, EvalError> {
    let narrow = |what: &str| EvalError::Unsupported(format!("{v} does not fit {what}"));
    Ok(match ty {
        DataType::Int8 => Arc::new(Int8Array::from(vec![
            i8::try_from(v).map_err(|_| narrow("tinyint"))?,
        ])),
        DataType::Int16 => Arc::new(Int16Array::from(vec![
            i16::try_from(v).map_err(|_| narrow("smallint"))?,
        ])),
        DataType::Int32 => Arc::new(Int32Array::from(vec![
            i32::try_from(v).map_err(|_| narrow("int"))?,
        ])),
        DataType::Int64 => Arc::new(Int64Array::from(vec![
            i64::try_from(v).map_err(|_| narrow("bigint"))?,
        ])),
        DataType::Decimal128(p, s) => {
            Arc::new(Decimal128Array::from(vec![v]).with_precision_and_scale(*p, *s)?)
        }
        other => return unsupported(format!("{other} is not an integer type")),
    })
}

fn int_range(ty: &DataType) -> Option<(i128, i128, u32)> {
    Some(match ty {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into(), 0),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into(), 0),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into(), 0),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into(), 0),
        DataType::Decimal128(p, s) => {
            let scale = u32::try_from(*s).ok()?;
            let max = 10i128.checked_pow(u32::from(*p))? - 1;
            (-max, max, scale)
        }
        _ => return None,
    })
}

fn is_string(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn string_scalar(ty: &DataType, s: &str) -> ArrayRef {
    match ty {
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![s])),
        DataType::Utf8View => Arc::new(StringViewArray::from(vec![s])),
        _ => Arc::new(StringArray::from(vec![s])),
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
    partition_columns: &'a BTreeSet<String>,
}

impl Compiler<'_> {
    fn column(&self, name: &str) -> Result<(usize, &DataType), EvalError> {
        let idx = self
            .schema
            .index_of(name)
            .map_err(|_| EvalError::MissingColumn(name.to_owned()))?;
        let ty = self.schema.field(idx).data_type();
        match ty {
            DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_) => unsupported(format!(
                "column {name:?} is {ty}: Lake Formation row filters cannot use date or timestamp columns"
            )),
            _ => Ok((idx, ty)),
        }
    }

    fn compile(&self, e: &Expr) -> Result<Node, EvalError> {
        match e {
            Expr::Nested(inner) => self.compile(inner),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Node::Not(Box::new(self.compile(expr)?))),
            Expr::BinaryOp { left, op, right } => {
                let cmp = match op {
                    BinaryOperator::And => {
                        return Ok(Node::And(
                            Box::new(self.compile(left)?),
                            Box::new(self.compile(right)?),
                        ));
                    }
                    BinaryOperator::Or => {
                        return Ok(Node::Or(
                            Box::new(self.compile(left)?),
                            Box::new(self.compile(right)?),
                        ));
                    }
                    BinaryOperator::Eq => Op::Eq,
                    BinaryOperator::NotEq => Op::NotEq,
                    BinaryOperator::Lt => Op::Lt,
                    BinaryOperator::LtEq => Op::LtEq,
                    BinaryOperator::Gt => Op::Gt,
                    BinaryOperator::GtEq => Op::GtEq,
                    other => {
                        return unsupported(format!(
                            "operator {other} is not allowed in a row filter"
                        ));
                    }
                };
                match (column_name(left), column_name(right)) {
                    (Some(c), None) => self.comparison(&c, cmp, right),
                    (None, Some(c)) => self.comparison(&c, cmp.flipped(), left),
                    (Some(_), Some(_)) => unsupported(format!(
                        "{e} compares a column with another column, which Lake Formation does not allow"
                    )),
                    (None, None) => unsupported(format!("{e}: a comparison takes a column")),
                }
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let Some(c) = column_name(inner) else {
                    return unsupported("IS NULL applies to a column");
                };
                if self.partition_columns.contains(&c) {
                    return unsupported(format!(
                        "{e}: Lake Formation does not allow IS [NOT] NULL on partition column {c:?}"
                    ));
                }
                let (col, _) = self.column(&c)?;
                Ok(Node::IsNull {
                    col,
                    negated: matches!(e, Expr::IsNotNull(_)),
                })
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } => {
                let Some(c) = column_name(expr) else {
                    return unsupported("IN applies to a column");
                };
                let mut node: Option<Node> = None;
                for item in list {
                    let eq = self.comparison(&c, Op::Eq, item)?;
                    node = Some(match node {
                        None => eq,
                        Some(n) => Node::Or(Box::new(n), Box::new(eq)),
                    });
                }
                let Some(node) = node else {
                    return unsupported("IN () needs at least one value");
                };
                Ok(if *negated {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let Some(c) = column_name(expr) else {
                    return unsupported("BETWEEN applies to a column");
                };
                let node = Node::And(
                    Box::new(self.comparison(&c, Op::GtEq, low)?),
                    Box::new(self.comparison(&c, Op::LtEq, high)?),
                );
                Ok(if *negated {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => {
                let Some(c) = column_name(expr) else {
                    return unsupported("LIKE applies to a column");
                };
                let (col, ty) = self.column(&c)?;
                if !is_string(ty) {
                    return unsupported(format!(
                        "LIKE on column {c:?} of type {ty}: a string column is needed"
                    ));
                }
                let Some(Lit::Str(p)) = literal(pattern)? else {
                    return unsupported("the LIKE pattern must be a single-quoted string");
                };
                // Arrow's LIKE treats `\` as an escape; SQL's LIKE without ESCAPE does not.
                Ok(Node::Like {
                    col,
                    pattern: p.replace('\\', "\\\\"),
                    negated: *negated,
                })
            }
            other => unsupported(format!("{other} is not allowed in a row filter")),
        }
    }

    fn comparison(&self, c: &str, op: Op, lit_expr: &Expr) -> Result<Node, EvalError> {
        let (col, ty) = self.column(c)?;
        let Some(lit) = literal(lit_expr)? else {
            return unsupported(format!(
                "{lit_expr}: a column is compared with a literal (no column-to-column comparison, no functions)"
            ));
        };
        let mismatch = |kind: &str| {
            unsupported(format!(
                "column {c:?} is {ty} but is compared with a {kind} literal"
            ))
        };
        match lit {
            Lit::Str(s) => {
                if is_string(ty) {
                    Ok(Node::Cmp {
                        col,
                        op,
                        scalar: string_scalar(ty, &s),
                    })
                } else {
                    mismatch("string")
                }
            }
            Lit::Bool(b) => {
                if *ty == DataType::Boolean {
                    Ok(Node::Cmp {
                        col,
                        op,
                        scalar: Arc::new(BooleanArray::from(vec![b])),
                    })
                } else {
                    mismatch("boolean")
                }
            }
            Lit::Num(v, scale, text) => {
                if let Some((min, max, col_scale)) = int_range(ty) {
                    Ok(match integer_plan(op, v, scale, col_scale, min, max) {
                        Plan::Cmp(op, v) => Node::Cmp {
                            col,
                            op,
                            scalar: integer_scalar(ty, v)?,
                        },
                        Plan::Const(value) => Node::Const { col, value },
                    })
                } else {
                    let f: f64 = text
                        .parse()
                        .map_err(|_| EvalError::Unsupported(format!("{text:?} is not a number")))?;
                    let scalar: ArrayRef = match ty {
                        DataType::Float64 => Arc::new(Float64Array::from(vec![f])),
                        DataType::Float32 => Arc::new(Float32Array::from(vec![f as f32])),
                        _ => return mismatch("number"),
                    };
                    Ok(Node::Cmp { col, op, scalar })
                }
            }
        }
    }
}

impl Evaluator {
    /// Compiles `filter` for batches of `schema`; `partition_columns` are the table's partition
    /// keys (on which Lake Formation refuses `IS [NOT] NULL`).
    pub fn new(
        filter: &RowFilter,
        schema: &Schema,
        partition_columns: &BTreeSet<String>,
    ) -> Result<Self, EvalError> {
        let compiler = Compiler {
            schema,
            partition_columns,
        };
        Ok(Self {
            root: compiler.compile(&filter.expr)?,
        })
    }

    /// The condition for every row of `batch`: TRUE, FALSE or NULL (unknown).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, EvalError> {
        eval(&self.root, batch)
    }

    /// The rows of `batch` whose condition is TRUE (FALSE and unknown rows are left out).
    pub fn select(&self, batch: &RecordBatch) -> Result<RecordBatch, EvalError> {
        Ok(filter_record_batch(
            batch,
            &only_true(self.evaluate(batch)?),
        )?)
    }
}

/// The mask with unknown (NULL) entries turned FALSE: only TRUE rows pass.
pub fn only_true(mask: BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask
    } else {
        prep_null_mask_filter(&mask)
    }
}

fn eval(node: &Node, batch: &RecordBatch) -> Result<BooleanArray, EvalError> {
    Ok(match node {
        Node::And(l, r) => and_kleene(&eval(l, batch)?, &eval(r, batch)?)?,
        Node::Or(l, r) => or_kleene(&eval(l, batch)?, &eval(r, batch)?)?,
        Node::Not(inner) => not(&eval(inner, batch)?)?,
        Node::IsNull { col, negated } => {
            let a = batch.column(*col);
            if *negated {
                is_not_null(a.as_ref())?
            } else {
                is_null(a.as_ref())?
            }
        }
        Node::Const { col, value } => {
            let a = batch.column(*col);
            let values = if *value {
                BooleanBuffer::new_set(a.len())
            } else {
                BooleanBuffer::new_unset(a.len())
            };
            BooleanArray::new(values, a.logical_nulls())
        }
        Node::Cmp { col, op, scalar } => {
            let a = batch.column(*col);
            let s = Scalar::new(Arc::clone(scalar));
            let l: &dyn Datum = a;
            match op {
                Op::Eq => arrow_ord::cmp::eq(l, &s)?,
                Op::NotEq => arrow_ord::cmp::neq(l, &s)?,
                Op::Lt => arrow_ord::cmp::lt(l, &s)?,
                Op::LtEq => arrow_ord::cmp::lt_eq(l, &s)?,
                Op::Gt => arrow_ord::cmp::gt(l, &s)?,
                Op::GtEq => arrow_ord::cmp::gt_eq(l, &s)?,
            }
        }
        Node::Like {
            col,
            pattern,
            negated,
        } => {
            let a = batch.column(*col);
            let p = Scalar::new(string_scalar(a.data_type(), pattern));
            let l: &dyn Datum = a;
            if *negated {
                arrow_string::like::nlike(l, &p)?
            } else {
                arrow_string::like::like(l, &p)?
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    /// Five rows; the last two have NULLs in every nullable column.
    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("region_code", DataType::Utf8, true),
            Field::new("los", DataType::Int32, true),
            Field::new("cost", DataType::Decimal128(12, 2), true),
            Field::new("urgent", DataType::Boolean, true),
            Field::new("score", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("admission_date", DataType::Date32, true),
            Field::new("year", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("76"),
                Some("11"),
                Some("7"),
                None,
                Some("760"),
            ])),
            Arc::new(Int32Array::from(vec![
                Some(1),
                Some(3),
                Some(10),
                None,
                Some(-2),
            ])),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(10_000),
                    Some(10_001),
                    Some(-50),
                    None,
                    Some(99_999),
                ])
                .with_precision_and_scale(12, 2)
                .unwrap(),
            ),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
                None,
            ])),
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(1.5),
                Some(2.0),
                None,
                Some(-1.0),
            ])),
            Arc::new(StringArray::from(vec![
                Some("O'Brien"),
                Some("o'brien"),
                Some("50%_off"),
                Some("a\\b"),
                None,
            ])),
            Arc::new(arrow_array::Date32Array::from(vec![
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
            ])),
            Arc::new(StringArray::from(vec![
                Some("2024"),
                Some("2024"),
                Some("2023"),
                Some("2023"),
                Some("2022"),
            ])),
        ];
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn parts() -> BTreeSet<String> {
        BTreeSet::from(["year".to_owned()])
    }

    /// The three-valued result per row: Some(true), Some(false) or None.
    fn eval3(text: &str) -> Vec<Option<bool>> {
        let f = RowFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let b = batch();
        let ev =
            Evaluator::new(&f, &b.schema(), &parts()).unwrap_or_else(|e| panic!("{text}: {e}"));
        ev.evaluate(&b).unwrap().iter().collect()
    }

    /// Indices of the rows the filter lets through.
    fn rows(text: &str) -> Vec<usize> {
        eval3(text)
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Some(true))
            .map(|(i, _)| i)
            .collect()
    }

    fn err(text: &str) -> String {
        let f = match RowFilter::parse(text) {
            Ok(f) => f,
            Err(e) => return e.to_string(),
        };
        let b = batch();
        Evaluator::new(&f, &b.schema(), &parts())
            .expect_err(text)
            .to_string()
    }

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const N: Option<bool> = None;

    #[test]
    fn comparison_operators_on_strings_are_case_sensitive_code_point_order() {
        assert_eq!(eval3("region_code = '76'"), [T, F, F, N, F]);
        assert_eq!(eval3("region_code <> '76'"), [F, T, T, N, T]);
        assert_eq!(eval3("region_code != '76'"), [F, T, T, N, T]);
        assert_eq!(eval3("region_code < '76'"), [F, T, T, N, F]);
        assert_eq!(eval3("region_code <= '76'"), [T, T, T, N, F]);
        assert_eq!(eval3("region_code > '76'"), [F, F, F, N, T]);
        assert_eq!(eval3("region_code >= '76'"), [T, F, F, N, T]);
        assert_eq!(eval3("'76' < region_code"), [F, F, F, N, T]);
        assert_eq!(rows("name = 'O''Brien'"), [0]);
        assert_eq!(rows("name = 'o''brien'"), [1]);
    }

    #[test]
    fn integers_compare_exactly_with_decimal_literals() {
        assert_eq!(eval3("los = 3"), [F, T, F, N, F]);
        assert_eq!(eval3("los > 2.5"), [F, T, T, N, F]);
        assert_eq!(eval3("los >= 3.0"), [F, T, T, N, F]);
        assert_eq!(eval3("los < 1.5"), [T, F, F, N, T]);
        assert_eq!(eval3("los = 2.5"), [F, F, F, N, F]);
        assert_eq!(eval3("los <> 2.5"), [T, T, T, N, T]);
        assert_eq!(eval3("los > -2"), [T, T, T, N, F]);
        assert_eq!(eval3("los >= -2.5"), [T, T, T, N, T]);
        assert_eq!(eval3("los < 10000000000"), [T, T, T, N, T]);
        assert_eq!(eval3("los > 10000000000"), [F, F, F, N, F]);
        assert_eq!(eval3("los = -10000000000"), [F, F, F, N, F]);
    }

    #[test]
    fn decimals_compare_exactly() {
        // cost: 100.00, 100.01, -0.50, NULL, 999.99 (decimal(12,2)).
        assert_eq!(eval3("cost = 100"), [T, F, F, N, F]);
        assert_eq!(eval3("cost = 100.00"), [T, F, F, N, F]);
        assert_eq!(eval3("cost = 100.010"), [F, T, F, N, F]);
        assert_eq!(eval3("cost = 100.005"), [F, F, F, N, F]);
        assert_eq!(eval3("cost > 100.005"), [F, T, F, N, T]);
        assert_eq!(eval3("cost >= 100.005"), [F, T, F, N, T]);
        assert_eq!(eval3("cost < 100.005"), [T, F, T, N, F]);
        assert_eq!(eval3("cost <= 100.009"), [T, F, T, N, F]);
        assert_eq!(eval3("cost < -0.5"), [F, F, F, N, F]);
        assert_eq!(eval3("cost <= -0.500"), [F, F, T, N, F]);
        assert_eq!(eval3("cost > -0.501"), [T, T, T, N, T]);
        assert_eq!(eval3("cost < 99999999999999999999.5"), [T, T, T, N, T]);
        assert_eq!(eval3("cost BETWEEN 100.005 AND 999.99"), [F, T, F, N, T]);
    }

    #[test]
    fn doubles_and_booleans() {
        assert_eq!(eval3("score > 1"), [F, T, T, N, F]);
        assert_eq!(eval3("score = 0.5"), [T, F, F, N, F]);
        assert_eq!(eval3("urgent = TRUE"), [T, F, T, N, N]);
        assert_eq!(eval3("urgent <> true"), [F, T, F, N, N]);
    }

    #[test]
    fn in_and_not_in() {
        assert_eq!(eval3("region_code IN ('76', '11')"), [T, T, F, N, F]);
        assert_eq!(eval3("region_code NOT IN ('76', '11')"), [F, F, T, N, T]);
        assert_eq!(eval3("los IN (1, 10, 2.5)"), [T, F, T, N, F]);
    }

    #[test]
    fn between_and_not_between() {
        assert_eq!(eval3("los BETWEEN 1 AND 3"), [T, T, F, N, F]);
        assert_eq!(eval3("los NOT BETWEEN 1 AND 3"), [F, F, T, N, T]);
        assert_eq!(eval3("los BETWEEN 3 AND 1"), [F, F, F, N, F]);
        assert_eq!(eval3("region_code BETWEEN '1' AND '7'"), [F, T, T, N, F]);
    }

    #[test]
    fn like_has_percent_and_underscore_and_no_escape() {
        assert_eq!(eval3("region_code LIKE '7%'"), [T, F, T, N, T]);
        assert_eq!(eval3("region_code LIKE '7_'"), [T, F, F, N, F]);
        assert_eq!(eval3("region_code NOT LIKE '7%'"), [F, T, F, N, F]);
        assert_eq!(eval3("name LIKE 'O%'"), [T, F, F, F, N]);
        assert_eq!(eval3("name LIKE '%''%'"), [T, T, F, F, N]);
        // `%` and `_` in the value are matched by the wildcards like any character.
        assert_eq!(eval3("name LIKE '50%'"), [F, F, T, F, N]);
        // A backslash is an ordinary character without ESCAPE.
        assert_eq!(eval3("name LIKE 'a\\b'"), [F, F, F, T, N]);
        assert_eq!(eval3("name LIKE 'a\\%'"), [F, F, F, T, N]);
    }

    #[test]
    fn null_checks() {
        assert_eq!(eval3("region_code IS NULL"), [F, F, F, T, F]);
        assert_eq!(eval3("urgent IS NOT NULL"), [T, T, T, F, F]);
        assert!(err("year IS NULL").contains("partition column"));
        assert!(err("year IS NOT NULL").contains("partition column"));
        // Partition columns are compared like any other.
        assert_eq!(rows("year = '2024'"), [0, 1]);
    }

    #[test]
    fn three_valued_logic() {
        // NULL AND FALSE is FALSE; NULL AND NULL is NULL; NULL OR TRUE is TRUE.
        assert_eq!(eval3("urgent = TRUE AND los > 100"), [F, F, F, N, F]);
        assert_eq!(eval3("urgent = TRUE AND los > -100"), [T, F, T, N, N]);
        assert_eq!(eval3("urgent = TRUE OR los > -100"), [T, T, T, N, T]);
        assert_eq!(eval3("urgent = TRUE OR los > 100"), [T, F, T, N, N]);
        // NOT unknown is unknown: a NULL row is never let through by negation.
        assert_eq!(eval3("NOT (region_code = '76')"), [F, T, T, N, T]);
        assert_eq!(eval3("NOT (urgent = TRUE)"), [F, T, F, N, N]);
        assert_eq!(rows("NOT (region_code = '76')"), [1, 2, 4]);
        assert_eq!(
            rows("(region_code = '76' OR region_code = '11') AND NOT (los > 2)"),
            [0]
        );
    }

    #[test]
    fn select_keeps_only_true_rows() {
        let f = RowFilter::parse("urgent = TRUE OR los > 100").unwrap();
        let b = batch();
        let out = Evaluator::new(&f, &b.schema(), &parts())
            .unwrap()
            .select(&b)
            .unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.schema(), b.schema());
    }

    #[test]
    fn outside_the_subset_is_an_error() {
        assert!(err("admission_date IS NULL").contains("date or timestamp"));
        assert!(err("missing = '1'").contains("not in the data"));
        assert!(err("region_code = 76").contains("compared with a number"));
        assert!(err("los = '1'").contains("compared with a string"));
        assert!(err("urgent = 1").contains("compared with a number"));
        assert!(err("los LIKE '1%'").contains("string column"));
        assert!(err("los > 1e3").contains("exponent"));
        assert!(err("lower(region_code) = '76'").contains("function"));
        assert!(err("los = cost").contains("another column"));
        assert!(err(&format!("los > {}", "9".repeat(40))).contains("38 digits"));
    }
}
