//! Typed cell outputs. The core never prints: a cell evaluates to an [`Output`], and each front
//! end renders it (the REPL to the terminal, `curate run` to stdout or JSON).

use comfy_table::{presets, Cell, ContentArrangement, Table};
use polars::prelude::*;
use rhai::Dynamic;

use crate::dataset::Dataset;
use crate::error::Result;

/// How many rows a dataset shows when displayed whole.
pub const DISPLAY_ROWS: usize = 10;
const MAX_CELL: usize = 40;
/// Columns a text table draws; the rest are listed by name under it.
pub const MAX_COLUMNS: usize = 12;

#[derive(Debug, Clone)]
pub enum Output {
    /// Plain text, as `print` or a scalar result gives.
    Text(String),
    /// The first rows of a table, with the full row count.
    Table(TableView),
    /// A chart or a contact sheet (PNG), already saved under `.curate/out/`.
    Image(crate::plot::Picture),
}

#[derive(Debug, Clone)]
pub struct TableView {
    pub head: DataFrame,
    pub total_rows: usize,
}

impl TableView {
    pub fn of(ds: &Dataset, rows: usize) -> Result<Self> {
        let head = ds.lazy().limit(rows as IdxSize).collect()?;
        let total_rows = if head.height() < rows { head.height() } else { ds.len()? };
        Ok(TableView { head, total_rows })
    }

    /// "10 of 1,400 rows × 9 columns"
    pub fn footer(&self) -> String {
        let (shown, cols) = (self.head.height(), self.head.width());
        if shown < self.total_rows {
            format!("{shown} of {} rows × {cols} columns", thousands(self.total_rows))
        } else {
            format!("{} rows × {cols} columns", thousands(self.total_rows))
        }
    }

    /// A compact text table: names, types, the first rows with long text cut, and a footer with
    /// the row count. Beyond `MAX_COLUMNS` columns, the last ones are named in the footer
    /// instead of drawn.
    pub fn render_text(&self, width: Option<u16>) -> String {
        let mut table = Table::new();
        table.load_preset(presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = width {
            table.set_width(w);
        }
        let all = self.head.columns();
        let cols = &all[..all.len().min(MAX_COLUMNS)];
        table.set_header(cols.iter().map(|c| Cell::new(format!("{}\n{}", c.name(), short_dtype(c.dtype())))));
        for i in 0..self.head.height() {
            table.add_row(cols.iter().map(|c| {
                let v = c.get(i).map(|v| cell_text(&v, c.name() == "path")).unwrap_or_default();
                Cell::new(v)
            }));
        }
        let mut footer = self.footer();
        if all.len() > cols.len() {
            let hidden: Vec<String> = all[cols.len()..].iter().map(|c| format!("{} ({})", c.name(), short_dtype(c.dtype()))).collect();
            footer.push_str(&format!("; not shown: {}", hidden.join(", ")));
        }
        if self.head.height() == 0 {
            return format!("{}\n(empty) {footer}", table);
        }
        format!("{table}\n{footer}")
    }

    /// `{"columns": [{name, type}], "rows": [{...}], "total_rows": N}`
    pub fn to_json(&self) -> serde_json::Value {
        let columns: Vec<_> = self.head.columns().iter().map(|c| serde_json::json!({"name": c.name().as_str(), "type": c.dtype().to_string()})).collect();
        let rows: Vec<serde_json::Value> = (0..self.head.height())
            .map(|i| {
                let obj: serde_json::Map<String, serde_json::Value> = self.head.columns().iter().map(|c| (c.name().to_string(), c.get(i).map(|v| any_to_json(&v)).unwrap_or_default())).collect();
                serde_json::Value::Object(obj)
            })
            .collect();
        serde_json::json!({"type": "table", "columns": columns, "rows": rows, "total_rows": self.total_rows})
    }
}

impl Output {
    /// The output a cell's value gives, or `None` for `()`.
    pub fn from_value(value: &Dynamic) -> Result<Option<Output>> {
        if value.is_unit() {
            return Ok(None);
        }
        if let Some(ds) = value.read_lock::<Dataset>() {
            return Ok(Some(Output::Table(TableView::of(&ds, DISPLAY_ROWS)?)));
        }
        if let Some(p) = value.read_lock::<crate::plot::Picture>() {
            return Ok(Some(Output::Image(p.clone())));
        }
        Ok(Some(Output::Text(display_value(value))))
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Output::Text(t) => serde_json::json!({"type": "text", "text": t}),
            Output::Table(t) => t.to_json(),
            Output::Image(p) => serde_json::json!({
                "type": "image", "title": p.title, "path": p.path.display().to_string(), "width": p.width, "height": p.height,
            }),
        }
    }

    pub fn render_text(&self, width: Option<u16>) -> String {
        match self {
            Output::Text(t) => t.clone(),
            Output::Table(t) => t.render_text(width),
            Output::Image(p) => p.describe(),
        }
    }
}

/// A Rhai value as a person reads it: strings without quotes at the top level, maps and arrays
/// in Rhai's own notation.
pub fn display_value(value: &Dynamic) -> String {
    if value.is_string() {
        return value.to_string();
    }
    if let Some(ds) = value.read_lock::<Dataset>() {
        return match TableView::of(&ds, DISPLAY_ROWS) {
            Ok(t) => t.render_text(None),
            Err(e) => format!("<dataset: {e}>"),
        };
    }
    format!("{value:?}")
}

fn short_dtype(dt: &DataType) -> String {
    match dt {
        DataType::String => "str".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(inner) => format!("list[{}]", short_dtype(inner)),
        other => other.to_string(),
    }
}

/// A cell's value as short text: floats to 4 places, long text cut (paths keep their tail).
pub fn cell_text(v: &AnyValue, keep_tail: bool) -> String {
    let s = match v {
        AnyValue::Null => "null".to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float32(x) => format!("{x:.4}"),
        AnyValue::Float64(x) => format!("{x:.4}"),
        other => other.to_string(),
    };
    let n = s.chars().count();
    if n <= MAX_CELL {
        return s;
    }
    if keep_tail {
        // For paths the file name matters more than the root.
        let tail: String = s.chars().skip(n - (MAX_CELL - 1)).collect();
        format!("…{tail}")
    } else {
        let head: String = s.chars().take(MAX_CELL - 1).collect();
        format!("{head}…")
    }
}

pub fn any_to_json(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        AnyValue::Null => J::Null,
        AnyValue::Boolean(b) => J::Bool(*b),
        AnyValue::String(s) => J::String(s.to_string()),
        AnyValue::StringOwned(s) => J::String(s.to_string()),
        AnyValue::UInt8(x) => (*x).into(),
        AnyValue::UInt16(x) => (*x).into(),
        AnyValue::UInt32(x) => (*x).into(),
        AnyValue::UInt64(x) => (*x).into(),
        AnyValue::Int8(x) => (*x).into(),
        AnyValue::Int16(x) => (*x).into(),
        AnyValue::Int32(x) => (*x).into(),
        AnyValue::Int64(x) => (*x).into(),
        AnyValue::Float32(x) => serde_json::Number::from_f64(*x as f64).map(J::Number).unwrap_or(J::Null),
        AnyValue::Float64(x) => serde_json::Number::from_f64(*x).map(J::Number).unwrap_or(J::Null),
        AnyValue::List(s) => J::Array(s.iter().map(|v| any_to_json(&v)).collect()),
        other => J::String(other.to_string()),
    }
}

/// A Rhai value as JSON, for `--json` output.
pub fn dynamic_to_json(value: &Dynamic) -> serde_json::Value {
    if let Some(p) = value.read_lock::<crate::plot::Picture>() {
        return Output::Image(p.clone()).to_json();
    }
    if let Some(ds) = value.read_lock::<Dataset>() {
        return match TableView::of(&ds, DISPLAY_ROWS) {
            Ok(t) => t.to_json(),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
    }
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// 1234567 → "1,234,567"
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn long_paths_keep_their_tail() {
        let long = "a/".repeat(30) + "file.png";
        let t = cell_text(&AnyValue::String(&long), true);
        assert!(t.starts_with('…') && t.ends_with("file.png"), "{t}");
        assert_eq!(t.chars().count(), MAX_CELL);
    }
}
