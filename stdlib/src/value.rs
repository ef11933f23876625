//! Conversions between Polars values and Rhai values.

use polars::prelude::*;
use rhai::{Array, Dynamic, Map};

/// A Polars value as a Rhai value: numbers, text and booleans map across, null becomes `()`,
/// lists become arrays, anything else its text form.
pub fn any_to_dynamic(v: &AnyValue) -> Dynamic {
    match v {
        AnyValue::Null => Dynamic::UNIT,
        AnyValue::Boolean(b) => (*b).into(),
        AnyValue::String(s) => (*s).into(),
        AnyValue::StringOwned(s) => s.as_str().into(),
        AnyValue::UInt8(x) => (*x as i64).into(),
        AnyValue::UInt16(x) => (*x as i64).into(),
        AnyValue::UInt32(x) => (*x as i64).into(),
        AnyValue::UInt64(x) => (*x as i64).into(),
        AnyValue::Int8(x) => (*x as i64).into(),
        AnyValue::Int16(x) => (*x as i64).into(),
        AnyValue::Int32(x) => (*x as i64).into(),
        AnyValue::Int64(x) => (*x).into(),
        AnyValue::Float32(x) => (*x as f64).into(),
        AnyValue::Float64(x) => (*x).into(),
        AnyValue::List(s) => series_to_array(s).into(),
        other => other.to_string().into(),
    }
}

pub fn series_to_array(s: &Series) -> Array {
    s.iter().map(|v| any_to_dynamic(&v)).collect()
}

/// Row `i` of `df` as a Rhai object map.
pub fn row_to_map(df: &DataFrame, i: usize) -> PolarsResult<Map> {
    let mut map = Map::new();
    for c in df.columns() {
        map.insert(c.name().as_str().into(), any_to_dynamic(&c.get(i)?));
    }
    Ok(map)
}

/// A Rhai array of strings (ids) as Rust strings; the error names the first non-string.
pub fn array_to_strings(arr: &Array) -> Result<Vec<String>, String> {
    arr.iter().map(|v| v.clone().into_string().map_err(|t| format!("expected text ids, found a {t}"))).collect()
}
