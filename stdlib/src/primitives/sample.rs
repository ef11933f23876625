//! `ds.sample(n, seed)`: a reproducible random sample, optionally stratified by a column.

use polars::prelude::*;
use rhai::{Engine, EvalAltResult, Map};

use super::{Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::options::{self, Options};

pub const DOC: Primitive = Primitive {
    name: "sample",
    signatures: &["ds.sample(n: int) -> Dataset", "ds.sample(n: int, seed: int) -> Dataset", "ds.sample(n: int, #{seed: int, replace: bool, by: string}) -> Dataset"],
    summary: "A random sample of n samples (all of them if there are fewer, unless replace is \
              set). The same seed gives the same sample; the default seed is 0. With `by`, n \
              samples from each value of that column.",
    options: &[
        Opt { name: "seed", default: "0", help: "The random seed: the same seed gives the same sample." },
        Opt { name: "replace", default: "false", help: "Draw with replacement, so n may exceed the number of samples." },
        Opt { name: "by", default: "none", help: "A column: draw n samples from each of its values." },
    ],
    examples: &[
        Example { code: "open().sample(5, 42).len()", result: Some("5") },
        Example { code: "open().sample(5, 42).ids() == open().sample(5, 42).ids()", result: Some("true") },
        Example { code: "open().sample(3, #{by: \"class\", seed: 1}).len()", result: Some("36") },
    ],
};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleOptions {
    pub seed: u64,
    pub replace: bool,
    pub by: Option<String>,
}

impl Options for SampleOptions {
    const KEYS: &'static [&'static str] = &["seed", "replace", "by"];
}

pub fn sample(ds: &Dataset, n: i64, opts: &SampleOptions) -> Result<DataFrame> {
    if n < 0 {
        return Err(CurateError::arg("sample", format!("n must be at least 0, got {n}")));
    }
    let n = n as usize;
    let df = ds.collect()?;
    let draw = |df: &DataFrame, seed: u64| -> PolarsResult<DataFrame> {
        let take = if opts.replace { n } else { n.min(df.height()) };
        if df.height() == 0 {
            return Ok(df.clone());
        }
        df.sample_n_literal(take, opts.replace, Some(true), Some(seed))
    };
    match &opts.by {
        None => Ok(draw(&df, opts.seed)?),
        Some(by) => {
            ds.check_column(by)?;
            // Groups in order of first appearance, each with its own derived seed, so that
            // adding a class does not reshuffle the others.
            let keys = df.column(by)?.cast(&DataType::String)?;
            let mut order: Vec<Option<String>> = Vec::new();
            let mut groups: std::collections::HashMap<Option<String>, Vec<IdxSize>> = Default::default();
            for (i, k) in keys.str()?.iter().enumerate() {
                let k = k.map(str::to_string);
                let rows = groups.entry(k.clone()).or_insert_with(|| {
                    order.push(k);
                    Vec::new()
                });
                rows.push(i as IdxSize);
            }
            let mut out: Option<DataFrame> = None;
            for (i, key) in order.iter().enumerate() {
                let idx = IdxCa::from_vec("idx".into(), groups.remove(key).unwrap_or_default());
                let s = draw(&df.take(&idx)?, opts.seed.wrapping_add(i as u64))?;
                match &mut out {
                    None => out = Some(s),
                    Some(o) => {
                        o.vstack_mut(&s)?;
                    }
                }
            }
            Ok(out.unwrap_or_else(|| df.clear()))
        }
    }
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("sample", |ds: &mut Dataset, n: i64| -> Result<Dataset, Box<EvalAltResult>> { Ok(ds.derive(sample(ds, n, &SampleOptions::default())?.lazy())?) });
    engine.register_fn("sample", |ds: &mut Dataset, n: i64, seed: i64| -> Result<Dataset, Box<EvalAltResult>> {
        let opts = SampleOptions { seed: seed as u64, ..SampleOptions::default() };
        Ok(ds.derive(sample(ds, n, &opts)?.lazy())?)
    });
    engine.register_fn("sample", |ds: &mut Dataset, n: i64, opts: Map| -> Result<Dataset, Box<EvalAltResult>> {
        let opts: SampleOptions = options::parse("sample", &opts)?;
        Ok(ds.derive(sample(ds, n, &opts)?.lazy())?)
    });
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn examples() {
        crate::testing::check_examples(&super::DOC);
    }

    #[test]
    fn different_seeds_differ_and_n_is_capped() {
        assert_eq!(eval("open().sample(5, 1).ids() == open().sample(5, 2).ids()"), "false");
        assert_eq!(eval("open().head(3).sample(10).len()"), "3");
        assert_eq!(eval("open().head(3).sample(10, #{replace: true}).len()"), "10");
    }

    #[test]
    fn unknown_option_lists_valid_keys() {
        let err = eval_err("open().sample(3, #{sead: 1})");
        assert!(err.contains("unknown option `sead`") && err.contains("valid keys: seed, replace, by"), "{err}");
    }
}
