//! `ds.filter(predicate)`: the samples that match a SQL expression, or a Rhai closure.
//!
//! A string predicate is parsed by Polars' own SQL expression parser and pushed down into the
//! scan: no Rhai code runs per row. A closure runs once per sample, on a map of its columns.

use polars::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext};

use super::{Example, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "filter",
    signatures: &["ds.filter(predicate: string) -> Dataset", "ds.filter(|sample| bool) -> Dataset"],
    summary: "The samples that match a predicate: a SQL expression over the columns, evaluated \
              by Polars (fast, pushed down into the manifest scan), or a closure over a sample \
              map (flexible, runs per row).",
    options: &[],
    examples: &[
        Example { code: "open().filter(\"label = 'person' AND width >= 25\").len()", result: Some("100") },
        Example { code: "open().filter(\"class IN ('cat', 'dog') AND split = 'test'\").len()", result: Some("40") },
        Example { code: "open().filter(|s| s.class == \"frog\" && s.split == \"train\").len()", result: Some("100") },
    ],
};

/// Parse a SQL predicate and check that every column it names exists.
pub fn parse_predicate(expr: &str, schema: &Schema) -> Result<Expr> {
    let parsed = polars::sql::sql_expr(expr).map_err(|e| CurateError::InvalidFilter { expr: expr.to_string(), message: clean_sql_error(&e.to_string()) })?;
    for name in parsed.clone().meta().root_names() {
        if !schema.contains(name.as_str()) {
            return Err(CurateError::unknown_column(&name, crate::manifest::names(schema)));
        }
    }
    Ok(parsed)
}

fn clean_sql_error(msg: &str) -> String {
    msg.trim_start_matches("SQL interface error: ").trim().to_string()
}

/// Filter `lf` by a SQL predicate.
pub fn filter_sql(lf: LazyFrame, schema: &Schema, expr: &str) -> Result<LazyFrame> {
    Ok(lf.filter(parse_predicate(expr, schema)?))
}

/// Filter by calling `keep` on each row's map; the first error stops the filter.
pub fn filter_rows<F>(df: &DataFrame, mut keep: F) -> Result<DataFrame, Box<EvalAltResult>>
where
    F: FnMut(rhai::Map) -> Result<bool, Box<EvalAltResult>>,
{
    let mut mask = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = crate::value::row_to_map(df, i).map_err(CurateError::from)?;
        mask.push(keep(row)?);
    }
    let mask = BooleanChunked::from_slice("mask".into(), &mask);
    Ok(df.filter(&mask).map_err(CurateError::from)?)
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("filter", |ds: &mut Dataset, expr: &str| -> Result<Dataset, Box<EvalAltResult>> { Ok(ds.derive(filter_sql(ds.lazy(), ds.schema(), expr)?)?) });
    engine.register_fn("filter", |ctx: NativeCallContext, ds: &mut Dataset, f: FnPtr| -> Result<Dataset, Box<EvalAltResult>> {
        let df = ds.collect()?;
        let kept = filter_rows(&df, |row| {
            let id = row.get("id").map(|v| v.to_string()).unwrap_or_default();
            let out: Dynamic = f.call_within_context(&ctx, (Dynamic::from_map(row),))?;
            out.as_bool().map_err(|t| CurateError::arg("filter", format!("the closure must return a bool, but returned a {t} for sample `{id}`")).into())
        })?;
        Ok(ds.derive(kept.lazy())?)
    });
}

#[cfg(test)]
mod tests {
    use crate::testing::eval_err;

    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn unknown_columns_are_named_with_a_suggestion() {
        let err = eval_err("open().filter(\"lable = 'person'\")");
        assert!(err.contains("unknown column `lable`"), "{err}");
        assert!(err.contains("did you mean `label`?"), "{err}");
    }

    #[test]
    fn bad_sql_is_reported() {
        let err = eval_err("open().filter(\"label = = 'x'\")");
        assert!(err.contains("invalid filter expression"), "{err}");
    }

    #[test]
    fn closures_must_return_bool() {
        let err = eval_err("open().filter(|s| s.class)");
        assert!(err.contains("must return a bool"), "{err}");
    }
}
