//! Pictures from datasets: `ds.grid()` (a contact sheet of thumbnails with captions) and the
//! charts `plot_hist`, `plot_counts`, `plot_confusion`, `plot_pr` and `plot_embedding`. Each
//! returns an `Image`: shown inline by a terminal that can, written to `.curate/out/`, and
//! embedded in `curate run --report`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use polars::prelude::*;
use rhai::{Array, Engine, EvalAltResult, Map};

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};
use crate::options::{self, Options};
use crate::plot::chart::{self, RED};
use crate::plot::grid::{contact_sheet, Tile};
use crate::plot::Picture;

pub const GRID_DOC: Primitive = Primitive {
    name: "grid",
    signatures: &["ds.grid() -> Image", "ds.grid(#{n: int, cols: int, size: int, label_by: string, title: string}) -> Image"],
    summary: "A contact sheet of the first n (24) samples: thumbnails `size` (128) pixels square, \
              `cols` (8) per row, each captioned with its id, its `label_by` column (\"label\") \
              and whatever the dataset knows about it: prediction and score, probe score, \
              distance, suggested label. A prediction frames its tile green when it matches the \
              label and red when it does not. A `similar` result is drawn one row per query: the \
              query first (framed blue), then its neighbours nearest first with their distances. \
              Unreadable files show as marked grey tiles. The PNG goes to .curate/out/; the REPL \
              shows it inline on kitty, iTerm2 and sixel terminals.",
    options: &[
        Opt { name: "n", default: "24", help: "How many samples to draw (at most 1000)." },
        Opt { name: "cols", default: "8", help: "Tiles per row." },
        Opt { name: "size", default: "128", help: "The side of a thumbnail, in pixels." },
        Opt { name: "label_by", default: "\"label\"", help: "The column written under each id." },
        Opt { name: "title", default: "\"N samples\" (\"N of M samples\")", help: "The title above the sheet." },
    ],
    examples: &[Example { code: "open().filter(\"class = 'frog'\").grid(#{n: 6, cols: 3}).width", result: Some("432") }],
};

pub const HIST_DOC: Primitive = Primitive {
    name: "plot_hist",
    signatures: &[
        "ds.plot_hist(column) -> Image",
        "ds.plot_hist(column, #{bins: int, by: string, title: string}) -> Image",
        "plot_hist(values: array) -> Image",
        "plot_hist(values, #{bins, title}) -> Image",
    ],
    summary: "A histogram of a numeric column (or an array of numbers), `bins` (30) wide, stacked \
              by the values of the `by` column when given.",
    options: &[
        Opt { name: "bins", default: "30", help: "The number of bins." },
        Opt { name: "by", default: "none", help: "A column: one stacked series per value (not for an array of values)." },
        Opt { name: "title", default: "the column and the count of values", help: "The chart's title." },
    ],
    examples: &[Example { code: "open().plot_hist(\"bytes\", #{by: \"split\"}).height", result: Some("540") }],
};

pub const COUNTS_DOC: Primitive = Primitive {
    name: "plot_counts",
    signatures: &["ds.plot_counts(column) -> Image", "ds.plot_counts(column, #{by: string, title: string}) -> Image"],
    summary: "Bars of the sample count per value of a column (most common first; more than 40 \
              values fold into \"(other)\"), one bar per value of `by` (e.g. the split) in each.",
    options: &[
        Opt { name: "by", default: "none", help: "A column: one bar per value of it within each value of `column`." },
        Opt { name: "title", default: "\"samples per <column>\"", help: "The chart's title." },
    ],
    examples: &[Example { code: "open().plot_counts(\"label\", #{by: \"split\"}).width", result: Some("900") }],
};

pub const CONFUSION_PLOT_DOC: Primitive = Primitive {
    name: "plot_confusion",
    signatures: &["ds.plot_confusion() -> Image", "ds.plot_confusion(#{label: string, pred: string, title: string}) -> Image"],
    summary: "The confusion matrix as a heat map: labels down, predictions across, each cell's \
              count written in it and its colour the share of its row (green on the diagonal, \
              red off it). Columns default to `label` and `pred_label`.",
    options: &[
        Opt { name: "label", default: "\"label\"", help: "The column of true labels, down the side." },
        Opt { name: "pred", default: "\"pred_label\"", help: "The column of predictions, across." },
        Opt { name: "title", default: "the columns, the count and the accuracy", help: "The chart's title." },
    ],
    examples: &[Example { code: "open().filter(\"split = 'test'\").predict(\"vww\").plot_confusion().height > 100", result: Some("true") }],
};

pub const PR_DOC: Primitive = Primitive {
    name: "plot_pr",
    signatures: &["ds.plot_pr(class) -> Image", "ds.plot_pr(class, #{label: string, score: string, title: string}) -> Image"],
    summary: "The precision–recall curve of one class: samples ranked by `score` (the class's \
              p_<class> column), positives where `label` (\"label\") is the class. The title \
              gives the average precision; the model's own predictions (pred_label) are marked.",
    options: &[
        Opt { name: "label", default: "\"label\"", help: "The column of true labels; positives are those equal to the class." },
        Opt { name: "score", default: "\"p_<class>\"", help: "The score column that ranks the samples." },
        Opt { name: "title", default: "the class and its average precision", help: "The chart's title." },
    ],
    examples: &[Example { code: "open().filter(\"split = 'test'\").predict(\"vww\").plot_pr(\"person\").width", result: Some("720") }],
};

pub const EMBEDDING_DOC: Primitive = Primitive {
    name: "plot_embedding",
    signatures: &["ds.plot_embedding() -> Image", "ds.plot_embedding(#{model: string, color: string, highlight: Dataset|array, max_points: int, title: string}) -> Image"],
    summary: "A 2-D map of the embeddings: the first two principal components, points coloured \
              by `color` (\"label\"), the `highlight` samples (ids or a dataset: failures, \
              neighbours, a probe's hits) drawn large and ringed. At most `max_points` (20,000) \
              points are drawn, a seeded sample, always with every highlighted one. Embed first.",
    options: &[
        Opt { name: "model", default: "the [defaults] embedding model", help: "The embedding model whose vectors are mapped." },
        Opt { name: "color", default: "\"label\"", help: "The column that colours the points." },
        Opt { name: "highlight", default: "none", help: "Samples drawn large and ringed: ids or a dataset." },
        Opt { name: "max_points", default: "20000", help: "At most this many points, a seeded sample that keeps every highlighted one." },
        Opt { name: "title", default: "the model and the number of samples", help: "The chart's title." },
    ],
    examples: &[Example { code: "let ds = open().filter(\"split = 'test'\").embed(); ds.plot_embedding(#{color: \"class\"}).height", result: Some("700") }],
};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GridOptions {
    pub n: Option<i64>,
    pub cols: Option<i64>,
    pub size: Option<i64>,
    pub label_by: Option<String>,
    pub title: Option<String>,
}

impl Options for GridOptions {
    const KEYS: &'static [&'static str] = &["n", "cols", "size", "label_by", "title"];
}

/// The options of every chart; each chart accepts only its own keys (`CHART_KEYS`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChartOptions {
    pub bins: Option<i64>,
    pub by: Option<String>,
    pub title: Option<String>,
    pub label: Option<String>,
    pub pred: Option<String>,
    pub score: Option<String>,
}

impl Options for ChartOptions {
    const KEYS: &'static [&'static str] = &["bins", "by", "title", "label", "pred", "score"];
}

/// Which option keys each chart takes.
pub(crate) const CHART_KEYS: &[(&str, &[&str])] = &[
    ("plot_hist", &["bins", "by", "title"]),
    ("plot_hist(values)", &["bins", "title"]),
    ("plot_counts", &["by", "title"]),
    ("plot_confusion", &["label", "pred", "title"]),
    ("plot_pr", &["label", "score", "title"]),
];

/// Parse a chart's options, refusing the keys that belong to other charts.
fn chart_options(function: &str, map: &Map) -> Result<ChartOptions> {
    let valid = CHART_KEYS.iter().find(|(f, _)| *f == function).map(|(_, k)| *k).unwrap_or(&[]);
    if let Some(key) = map.keys().find(|k| !valid.contains(&k.as_str())) {
        return Err(CurateError::UnknownOption { function: function.trim_end_matches("(values)").to_string(), key: key.to_string(), valid: valid.iter().map(|k| k.to_string()).collect() });
    }
    options::parse(function, map)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingOptions {
    pub model: Option<String>,
    pub color: Option<String>,
    #[serde(skip)]
    pub highlight: Vec<String>,
    pub max_points: Option<i64>,
    pub title: Option<String>,
}

impl Options for EmbeddingOptions {
    const KEYS: &'static [&'static str] = &["model", "color", "highlight", "max_points", "title"];
}

const MAX_GRID: i64 = 1000;

fn save(ctx: &Context, img: &image::RgbImage, title: &str, kind: &str) -> Result<Picture> {
    let out = match &ctx.workspace {
        Some(ws) => crate::plot::out_dir(ws.root()),
        None => crate::plot::out_dir(&ctx.root),
    };
    Ok(Picture::save_new(img, title, kind, &out)?.relative_to(&ctx.root))
}

/// String values of a column (nulls as "null"), any type.
fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let s = df.column(name)?.cast(&DataType::String)?;
    Ok(s.str()?.iter().map(|v| v.unwrap_or("null").to_string()).collect())
}

fn optional_strings(df: &DataFrame, name: &str) -> Result<Option<Vec<Option<String>>>> {
    if !df.schema().contains(name) {
        return Ok(None);
    }
    let s = df.column(name)?.cast(&DataType::String)?;
    Ok(Some(s.str()?.iter().map(|v| v.map(str::to_string)).collect()))
}

fn optional_floats(df: &DataFrame, name: &str) -> Result<Option<Vec<Option<f64>>>> {
    if !df.schema().contains(name) {
        return Ok(None);
    }
    let s = df.column(name)?.cast(&DataType::Float64)?;
    Ok(Some(s.f64()?.iter().collect()))
}

pub fn grid(ctx: &Context, ds: &Dataset, opts: &GridOptions) -> Result<Picture> {
    let n = opts.n.unwrap_or(24);
    if !(1..=MAX_GRID).contains(&n) {
        return Err(CurateError::InvalidOption { function: "grid".into(), key: "n".into(), message: format!("must be 1 to {MAX_GRID}, got {n}") });
    }
    let size = opts.size.unwrap_or(128);
    if !(32..=512).contains(&size) {
        return Err(CurateError::InvalidOption { function: "grid".into(), key: "size".into(), message: format!("must be 32 to 512 pixels, got {size}") });
    }
    if let Some(c) = opts.cols {
        if !(1..=50).contains(&c) {
            return Err(CurateError::InvalidOption { function: "grid".into(), key: "cols".into(), message: format!("must be 1 to 50, got {c}") });
        }
    }
    let names = ds.column_names();
    let label_by = match &opts.label_by {
        Some(l) => {
            ds.check_column(l)?;
            Some(l.clone())
        }
        None => names.iter().any(|c| c == "label").then(|| "label".to_string()),
    };
    let wanted = ["id", "path", "pred_label", "pred_score", "score", "distance", "influence", "self_influence", "query", "suggested_label", "self_confidence"];
    let mut cols: Vec<Expr> = wanted.iter().filter(|c| names.iter().any(|n| n == *c)).map(|c| col(*c)).collect();
    if let Some(l) = &label_by {
        if !wanted.contains(&l.as_str()) {
            cols.push(col(l.as_str()));
        }
    }
    let df = ds.lazy().select(cols).limit(n as IdxSize).collect()?;
    if df.height() == 0 {
        return Err(CurateError::arg("grid", "the dataset is empty: nothing to show"));
    }
    let ws = ds.workspace();
    let ids = strings(&df, "id")?;
    let paths = strings(&df, "path")?;
    let labels = match &label_by {
        Some(l) => optional_strings(&df, l)?,
        None => None,
    };
    let pred = optional_strings(&df, "pred_label")?;
    let pred_score = optional_floats(&df, "pred_score")?;
    let score = optional_floats(&df, "score")?;
    let distance = optional_floats(&df, "distance")?;
    let influence = optional_floats(&df, "influence")?;
    let self_influence = optional_floats(&df, "self_influence")?;
    let query = optional_strings(&df, "query")?;
    let suggested = optional_strings(&df, "suggested_label")?;
    let confidence = optional_floats(&df, "self_confidence")?;

    let tile = |i: usize| -> Tile {
        let mut lines = vec![ids[i].clone()];
        let label = labels.as_ref().and_then(|l| l[i].clone());
        if let Some(l) = &label {
            lines.push(l.clone());
        }
        let mut frame = None;
        if let Some(p) = pred.as_ref().and_then(|p| p[i].clone()) {
            let s = pred_score.as_ref().and_then(|s| s[i]).map(|s| format!(" {s:.2}")).unwrap_or_default();
            lines.push(format!("pred {p}{s}"));
            if let Some(l) = &label {
                frame = Some(if *l == p { chart::GREEN } else { RED });
            }
        }
        if let Some(s) = score.as_ref().and_then(|s| s[i]) {
            lines.push(format!("score {s:.3}"));
        }
        if let Some(d) = distance.as_ref().and_then(|d| d[i]) {
            lines.push(format!("distance {d:.3}"));
        }
        if let Some(v) = influence.as_ref().and_then(|d| d[i]) {
            lines.push(format!("influence {v:+.3}"));
        }
        if let Some(v) = self_influence.as_ref().and_then(|d| d[i]) {
            lines.push(format!("self-influence {v:.3}"));
        }
        if let Some(s) = suggested.as_ref().and_then(|s| s[i].clone()) {
            let c = confidence.as_ref().and_then(|c| c[i]).map(|c| format!(", p(label) {c:.2}")).unwrap_or_default();
            lines.push(format!("→ {s}{c}"));
        }
        Tile { path: Some(ws.media_path(&paths[i])), lines, frame }
    };

    let (groups, cols, title, lead) = match &query {
        Some(q) => {
            // One row per query: the query, then its neighbours in the order given.
            let mut order: Vec<String> = Vec::new();
            let mut members: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, qi) in q.iter().enumerate() {
                let qi = qi.clone().unwrap_or_default();
                if !members.contains_key(&qi) {
                    order.push(qi.clone());
                }
                members.entry(qi).or_default().push(i);
            }
            let queries = query_tiles(ctx, ds, &order, label_by.as_deref())?;
            let widest = members.values().map(Vec::len).max().unwrap_or(1);
            let cols = opts.cols.map(|c| c as usize).unwrap_or((widest + 1).min(11));
            let groups: Vec<Vec<Tile>> = order.iter().zip(queries).map(|(q, qt)| std::iter::once(qt).chain(members[q].iter().map(|&i| tile(i))).collect()).collect();
            let what = if influence.is_some() { "most influential for" } else { "nearest to" };
            let title = format!("{} {what} {}", df.height(), if order.len() == 1 { order[0].clone() } else { format!("{} queries", order.len()) });
            (groups, cols, title, true)
        }
        None => {
            let cols = opts.cols.map(|c| c as usize).unwrap_or(df.height().min(8));
            let total = ds.len()?;
            let title = if total > df.height() { format!("{} of {} samples", df.height(), crate::output::thousands(total)) } else { format!("{} samples", df.height()) };
            (vec![(0..df.height()).map(tile).collect()], cols, title, false)
        }
    };
    let title = opts.title.clone().unwrap_or(title);
    let img = contact_sheet(&groups, cols, size as u32, &title, lead)?;
    save(ctx, &img, &title, "grid")
}

/// The tile of each query of a `similar` result: a sample of the workspace (looked up in the
/// whole workspace, since queries are left out of results) or an image file.
fn query_tiles(ctx: &Context, ds: &Dataset, queries: &[String], label_by: Option<&str>) -> Result<Vec<Tile>> {
    let ws = ds.workspace();
    let all = ws.scan_manifest()?;
    let schema = all.clone().collect_schema()?;
    let mut sel = vec![col("id"), col("path")];
    let label_by = label_by.filter(|l| schema.contains(l) && *l != "id" && *l != "path");
    if let Some(l) = label_by {
        sel.push(col(l));
    }
    let want = Series::new("id".into(), queries.to_vec());
    let df = all.filter(col("id").is_in(lit(want).implode(false), false)).select(sel).collect()?;
    let ids = strings(&df, "id")?;
    let paths = strings(&df, "path")?;
    let labels = match label_by {
        Some(l) => Some(strings(&df, l)?),
        None => None,
    };
    let blue = plotters::style::RGBColor(31, 119, 180);
    Ok(queries
        .iter()
        .map(|q| match ids.iter().position(|i| i == q) {
            Some(r) => {
                let mut lines = vec![q.clone()];
                if let Some(l) = &labels {
                    lines.push(l[r].clone());
                }
                lines.push("query".to_string());
                Tile { path: Some(ws.media_path(&paths[r])), lines, frame: Some(blue) }
            }
            None => Tile { path: crate::workspace::resolve_inside(&ctx.root, q).ok(), lines: vec![q.clone(), "query (file)".to_string()], frame: Some(blue) },
        })
        .collect())
}

fn numbers(ds: &Dataset, column: &str, by: Option<&str>) -> Result<Vec<(String, Vec<f64>)>> {
    ds.check_column(column)?;
    let dt = ds.schema().get(column).cloned().unwrap_or(DataType::Null);
    if !dt.is_primitive_numeric() && !dt.is_bool() {
        return Err(CurateError::arg("plot_hist", format!("column `{column}` is {dt}, not a number")));
    }
    let mut sel = vec![col(column).cast(DataType::Float64).alias("v")];
    if let Some(b) = by {
        ds.check_column(b)?;
        sel.push(col(b).cast(DataType::String).fill_null(lit("null")).alias("g"));
    }
    let df = ds.lazy().select(sel).collect()?;
    let values: Vec<Option<f64>> = df.column("v")?.f64()?.iter().collect();
    let Some(_) = by else { return Ok(vec![(column.to_string(), values.into_iter().flatten().collect())]) };
    let groups = strings(&df, "g")?;
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for (g, v) in groups.into_iter().zip(values) {
        let Some(v) = v else { continue };
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

pub fn plot_hist(ctx: &Context, series: Vec<(String, Vec<f64>)>, x_desc: &str, opts: &ChartOptions) -> Result<Picture> {
    let bins = opts.bins.unwrap_or(30);
    if !(1..=500).contains(&bins) {
        return Err(CurateError::InvalidOption { function: "plot_hist".into(), key: "bins".into(), message: format!("must be 1 to 500, got {bins}") });
    }
    let n: usize = series.iter().map(|s| s.1.len()).sum();
    if n == 0 {
        return Err(CurateError::arg("plot_hist", "no values to plot (the column is empty or all null)"));
    }
    let title = opts.title.clone().unwrap_or_else(|| format!("{x_desc}: {} values", crate::output::thousands(n)));
    let img = chart::histogram(&series, bins as usize, &title, x_desc)?;
    save(ctx, &img, &title, "hist")
}

pub fn plot_counts(ctx: &Context, ds: &Dataset, column: &str, opts: &ChartOptions) -> Result<Picture> {
    ds.check_column(column)?;
    let mut sel = vec![col(column).cast(DataType::String).fill_null(lit("null")).alias("c")];
    if let Some(b) = &opts.by {
        ds.check_column(b)?;
        sel.push(col(b.as_str()).cast(DataType::String).fill_null(lit("null")).alias("g"));
    } else {
        sel.push(lit("samples").alias("g"));
    }
    let df = ds.lazy().select(sel).group_by([col("c"), col("g")]).agg([len().alias("n")]).collect()?;
    let cats = strings(&df, "c")?;
    let grps = strings(&df, "g")?;
    let ns: Vec<u64> = df.column("n")?.cast(&DataType::UInt64)?.u64()?.iter().map(|v| v.unwrap_or(0)).collect();
    if ns.is_empty() {
        return Err(CurateError::arg("plot_counts", "the dataset is empty: nothing to count"));
    }
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for (c, n) in cats.iter().zip(&ns) {
        *totals.entry(c).or_default() += n;
    }
    let mut order: Vec<(&str, u64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut categories: Vec<String> = order.iter().take(chart::MAX_CATEGORIES).map(|c| c.0.to_string()).collect();
    let folded = order.len() > chart::MAX_CATEGORIES;
    if folded {
        categories.push("(other)".to_string());
    }
    let mut groups: Vec<String> = grps.clone();
    groups.sort();
    groups.dedup();
    let mut counts = vec![vec![0f64; categories.len()]; groups.len()];
    for ((c, g), n) in cats.iter().zip(&grps).zip(&ns) {
        let gi = groups.iter().position(|x| x == g).unwrap_or(0);
        let ci = categories.iter().position(|x| x == c).unwrap_or(categories.len() - 1);
        counts[gi][ci] += *n as f64;
    }
    let by = opts.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
    let title = opts.title.clone().unwrap_or_else(|| format!("samples per {column}{by}"));
    let img = chart::bars(&categories, &groups, &counts, &title, "samples")?;
    save(ctx, &img, &title, "counts")
}

pub fn plot_confusion(ctx: &Context, ds: &Dataset, opts: &ChartOptions) -> Result<Picture> {
    let pair = super::label_issues::PairOptions { label: opts.label.clone(), pred: opts.pred.clone() };
    let (label, pred) = super::label_issues::pair_columns(ds, &pair)?;
    let (labels, preds, counts) = super::label_issues::pair_counts(ds, &label, &pred)?;
    if labels.is_empty() {
        return Err(CurateError::arg("plot_confusion", format!("no sample has both `{label}` and `{pred}`")));
    }
    // Classes in one order on both axes, so that the diagonal is the diagonal.
    let mut classes: Vec<String> = labels.iter().chain(&preds).cloned().collect();
    classes.sort();
    classes.dedup();
    let rows: Vec<String> = classes.iter().filter(|c| labels.contains(c)).cloned().collect();
    let cols: Vec<String> = classes.iter().filter(|c| preds.contains(c) || labels.contains(c)).cloned().collect();
    let table: Vec<Vec<u64>> = rows.iter().map(|l| cols.iter().map(|p| counts.get(&(l.clone(), p.clone())).copied().unwrap_or(0)).collect()).collect();
    let total: u64 = table.iter().flatten().sum();
    let right: u64 = rows.iter().enumerate().map(|(i, l)| cols.iter().position(|c| c == l).map(|j| table[i][j]).unwrap_or(0)).sum();
    let title =
        opts.title.clone().unwrap_or_else(|| format!("confusion: {label} vs {pred} ({} samples, accuracy {:.3})", crate::output::thousands(total as usize), right as f64 / total.max(1) as f64));
    let img = chart::heatmap(&rows, &cols, &table, &title, &label, &pred)?;
    save(ctx, &img, &title, "confusion")
}

/// Points of the precision–recall curve by descending score (ties taken together), and the
/// average precision (the mean of the precision at each positive's rank, as scikit-learn's
/// `average_precision_score`).
pub fn pr_points(scored: &mut [(f64, bool)]) -> (Vec<(f64, f64)>, f64) {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = scored.iter().filter(|s| s.1).count();
    if positives == 0 {
        return (vec![], 0.0);
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = vec![(0.0, 1.0)];
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let s = scored[i].0;
        while i < scored.len() && scored[i].0.total_cmp(&s).is_eq() {
            if scored[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
        points.push((recall, precision));
    }
    (points, ap)
}

pub fn plot_pr(ctx: &Context, ds: &Dataset, class: &str, opts: &ChartOptions) -> Result<Picture> {
    let label = opts.label.clone().unwrap_or_else(|| "label".into());
    let score = opts.score.clone().unwrap_or_else(|| super::predict::class_column(class));
    ds.check_column(&label)?;
    if !ds.schema().contains(&score) && opts.score.is_none() {
        return Err(CurateError::arg("plot_pr", format!("ds has no `{score}` column: run ds.predict(model), ds.load_predictions(file) or ds.fit_probe(col) first, or name a score column")));
    }
    ds.check_column(&score)?;
    let has_pred = ds.schema().contains("pred_label");
    let mut sel = vec![col(label.as_str()).cast(DataType::String).alias("l"), col(score.as_str()).cast(DataType::Float64).alias("s")];
    if has_pred {
        sel.push(col("pred_label").cast(DataType::String).alias("p"));
    }
    let df = ds.lazy().select(sel).filter(col("s").is_not_null().and(col("l").is_not_null())).collect()?;
    let ls = df.column("l")?.str()?.clone();
    let ss = df.column("s")?.f64()?.clone();
    // NaN scores (a predictions file can hold them) rank nowhere: they are left out.
    let mut scored: Vec<(f64, bool)> = ls.iter().zip(ss.iter()).filter_map(|(l, s)| Some((s.filter(|s| s.is_finite())?, l? == class))).collect();
    let positives = scored.iter().filter(|s| s.1).count();
    if positives == 0 {
        return Err(CurateError::arg("plot_pr", format!("no sample has {label} = '{class}': a precision–recall curve needs positives")));
    }
    let operating = if has_pred {
        let ps = df.column("p")?.str()?.clone();
        let (mut tp, mut predicted) = (0usize, 0usize);
        for (l, p) in ls.iter().zip(ps.iter()) {
            if p == Some(class) {
                predicted += 1;
                if l == Some(class) {
                    tp += 1;
                }
            }
        }
        (predicted > 0).then(|| (tp as f64 / positives as f64, tp as f64 / predicted as f64))
    } else {
        None
    };
    let n = scored.len();
    let (points, ap) = pr_points(&mut scored);
    let title = opts.title.clone().unwrap_or_else(|| format!("{class} by {score}: AP {ap:.3} ({positives} of {n} positive)"));
    let img = chart::pr_curve(&points, &title, operating)?;
    save(ctx, &img, &title, "pr")
}

pub fn plot_embedding(ctx: &Context, ds: &Dataset, opts: &EmbeddingOptions) -> Result<Picture> {
    let ws = ds.workspace().clone();
    let model = ctx.registry.model(&ws, opts.model.as_deref())?;
    let vectors = ctx.registry.vectors(&ws, &model)?;
    let view = crate::vectors::View::of(ds, &vectors)?;
    if view.is_empty() {
        return Err(CurateError::NotEmbedded { model: model.name.clone(), missing: view.missing });
    }
    let color_col = match &opts.color {
        Some(c) => {
            ds.check_column(c)?;
            Some(c.clone())
        }
        None => ds.column_names().into_iter().find(|c| c == "label"),
    };
    let mut sel = vec![col("id")];
    if let Some(c) = &color_col {
        sel.push(col(c.as_str()).cast(DataType::String).fill_null(lit("null")).alias("c"));
    }
    let df = ds.lazy().select(sel).collect()?;
    let ids = strings(&df, "id")?;
    let colour_of: HashMap<&str, String> = match &color_col {
        Some(_) => ids.iter().map(String::as_str).zip(strings(&df, "c")?).collect(),
        None => HashMap::new(),
    };
    let highlight: HashSet<&str> = opts.highlight.iter().map(String::as_str).collect();
    let max_points = opts.max_points.unwrap_or(20_000);
    if max_points < 1 {
        return Err(CurateError::InvalidOption { function: "plot_embedding".into(), key: "max_points".into(), message: format!("must be at least 1, got {max_points}") });
    }
    // One point per sample (identical files share a vector row and a point position).
    let mut points: Vec<(usize, &str)> = Vec::new();
    for (row, ids) in view.groups() {
        for id in ids {
            points.push((row, id.as_str()));
        }
    }
    if points.len() > max_points as usize {
        let mut rng = curate_kernels::SplitMix(7);
        let keep = max_points as usize;
        let (mut hi, mut rest): (Vec<_>, Vec<_>) = points.into_iter().partition(|p| highlight.contains(p.1));
        // Partial Fisher–Yates: a seeded sample of the rest.
        let room = keep.saturating_sub(hi.len()).min(rest.len());
        for i in 0..room {
            let j = i + (rng.next_u64() % (rest.len() - i) as u64) as usize;
            rest.swap(i, j);
        }
        rest.truncate(room);
        hi.extend(rest);
        points = hi;
    }
    let dim = vectors.dim();
    let mut data = Vec::with_capacity(points.len() * dim);
    for (row, _) in &points {
        data.extend_from_slice(&vectors.raw_row(*row));
    }
    let (proj, shares) = curate_kernels::pca::project(&data, dim, 2, 11);
    let mut names: Vec<String> = points.iter().map(|p| colour_of.get(p.1).cloned().unwrap_or_else(|| "samples".into())).collect();
    let mut categories: Vec<String> = names.clone();
    categories.sort();
    categories.dedup();
    if categories.len() > 20 {
        // Keep the 19 largest groups; fold the rest.
        let mut sizes: HashMap<&String, usize> = HashMap::new();
        for n in &names {
            *sizes.entry(n).or_default() += 1;
        }
        let mut by_size: Vec<(&String, usize)> = sizes.into_iter().collect();
        by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kept: HashSet<String> = by_size.iter().take(19).map(|s| s.0.clone()).collect();
        names = names.into_iter().map(|n| if kept.contains(&n) { n } else { "(other)".into() }).collect();
        categories = kept.into_iter().collect();
        categories.sort();
        categories.push("(other)".into());
    }
    let category: Vec<usize> = names.iter().map(|n| categories.iter().position(|c| c == n).unwrap_or(0)).collect();
    let hl: Vec<bool> = points.iter().map(|p| highlight.contains(p.1)).collect();
    let xy: Vec<(f64, f64)> = proj.iter().map(|p| (p[0] as f64, p[1] as f64)).collect();
    let colored = color_col.as_deref().map(|c| format!(", by {c}")).unwrap_or_default();
    let title = opts.title.clone().unwrap_or_else(|| format!("{} embeddings, first two principal components ({} samples{colored})", model.name, crate::output::thousands(points.len())));
    let axes = (format!("PC1 ({:.1}% of variance)", shares[0] * 100.0), format!("PC2 ({:.1}%)", shares[1] * 100.0));
    let img = chart::scatter(&xy, &category, &categories, &hl, &title, (&axes.0, &axes.1))?;
    save(ctx, &img, &title, "embedding")
}

fn array_numbers(values: &Array) -> Result<Vec<f64>> {
    values
        .iter()
        .map(|v| v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64)).ok_or_else(|| CurateError::arg("plot_hist", format!("values must be numbers, found a {}", v.type_name()))))
        .collect()
}

fn embedding_options(map: &Map) -> Result<EmbeddingOptions> {
    let mut m = map.clone();
    let highlight = m.remove("highlight");
    let mut opts: EmbeddingOptions = options::parse("plot_embedding", &m)?;
    if let Some(h) = highlight {
        opts.highlight = super::classify::ids_of("plot_embedding", "highlight", &h)?;
    }
    Ok(opts)
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    engine.register_type_with_name::<Picture>("Image");
    engine.register_fn("to_string", |p: &mut Picture| p.describe());
    engine.register_fn("to_debug", |p: &mut Picture| p.describe());
    engine.register_get("width", |p: &mut Picture| p.width as i64);
    engine.register_get("height", |p: &mut Picture| p.height as i64);
    engine.register_get("path", |p: &mut Picture| p.path.display().to_string());
    engine.register_get("title", |p: &mut Picture| p.title.clone());
    let c = ctx.clone();
    engine.register_fn("save", move |p: &mut Picture, path: &str| -> Result<(), Box<EvalAltResult>> {
        if !path.to_ascii_lowercase().ends_with(".png") {
            return Err(CurateError::arg("save", format!("`{path}`: an image is saved as a .png file")).into());
        }
        let target = crate::workspace::resolve_inside(&c.root, path)?;
        Ok(p.save_as(&target)?)
    });

    let c = ctx.clone();
    engine.register_fn("grid", move |ds: &mut Dataset| -> Result<Picture, Box<EvalAltResult>> { Ok(grid(&c, ds, &GridOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("grid", move |ds: &mut Dataset, o: Map| -> Result<Picture, Box<EvalAltResult>> { Ok(grid(&c, ds, &options::parse("grid", &o)?)?) });

    let c = ctx.clone();
    engine.register_fn("plot_hist", move |ds: &mut Dataset, column: &str| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_hist(&c, numbers(ds, column, None)?, column, &ChartOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("plot_hist", move |ds: &mut Dataset, column: &str, o: Map| -> Result<Picture, Box<EvalAltResult>> {
        let opts = chart_options("plot_hist", &o)?;
        Ok(plot_hist(&c, numbers(ds, column, opts.by.as_deref())?, column, &opts)?)
    });
    let c = ctx.clone();
    engine.register_fn("plot_hist", move |values: Array| -> Result<Picture, Box<EvalAltResult>> {
        Ok(plot_hist(&c, vec![("values".into(), array_numbers(&values)?)], "value", &ChartOptions::default())?)
    });
    let c = ctx.clone();
    engine.register_fn("plot_hist", move |values: Array, o: Map| -> Result<Picture, Box<EvalAltResult>> {
        let opts = chart_options("plot_hist(values)", &o)?;
        Ok(plot_hist(&c, vec![("values".into(), array_numbers(&values)?)], "value", &opts)?)
    });

    let c = ctx.clone();
    engine.register_fn("plot_counts", move |ds: &mut Dataset, column: &str| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_counts(&c, ds, column, &ChartOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("plot_counts", move |ds: &mut Dataset, column: &str, o: Map| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_counts(&c, ds, column, &chart_options("plot_counts", &o)?)?) });

    let c = ctx.clone();
    engine.register_fn("plot_confusion", move |ds: &mut Dataset| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_confusion(&c, ds, &ChartOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("plot_confusion", move |ds: &mut Dataset, o: Map| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_confusion(&c, ds, &chart_options("plot_confusion", &o)?)?) });

    let c = ctx.clone();
    engine.register_fn("plot_pr", move |ds: &mut Dataset, class: &str| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_pr(&c, ds, class, &ChartOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("plot_pr", move |ds: &mut Dataset, class: &str, o: Map| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_pr(&c, ds, class, &chart_options("plot_pr", &o)?)?) });

    let c = ctx.clone();
    engine.register_fn("plot_embedding", move |ds: &mut Dataset| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_embedding(&c, ds, &EmbeddingOptions::default())?) });
    let c = ctx.clone();
    engine.register_fn("plot_embedding", move |ds: &mut Dataset, o: Map| -> Result<Picture, Box<EvalAltResult>> { Ok(plot_embedding(&c, ds, &embedding_options(&o)?)?) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        for doc in [&GRID_DOC, &HIST_DOC, &COUNTS_DOC, &CONFUSION_PLOT_DOC, &PR_DOC, &EMBEDDING_DOC] {
            crate::testing::check_examples(doc);
        }
    }

    #[test]
    fn average_precision_matches_a_hand_count() {
        // Ranked: + - + -  → precision at the positives 1/1 and 2/3: AP = (1 + 2/3) / 2.
        let mut s = vec![(0.9, true), (0.8, false), (0.7, true), (0.1, false)];
        let (points, ap) = pr_points(&mut s);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12, "{ap}");
        assert_eq!(points.last(), Some(&(1.0, 0.5)));
        // A perfect ranking has AP 1.
        let mut s = vec![(0.2, false), (0.9, true), (0.8, true)];
        assert_eq!(pr_points(&mut s).1, 1.0);
        // NaN ties end (they used to loop for ever).
        let mut s = vec![(f64::NAN, true), (f64::NAN, false), (0.5, true)];
        assert_eq!(pr_points(&mut s).0.len(), 3);
    }
}
