//! Charts drawn with plotters into an RGB buffer: histogram, bars by category, confusion heat
//! map, per-test pass/fail bars, precision–recall curve and a 2-D scatter (the embedding map).
//!
//! Category names are drawn by us beside horizontal bars (never rotated, never overlapping), and
//! the label area is sized from the font's own measure of the longest name.

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{draw_err, ellipsize, fonts, FAMILY};
use crate::error::Result;

pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 540;
/// Category labels longer than this are cut (with an ellipsis).
const MAX_LABEL: usize = 28;
/// More categories than this are folded into "(other)".
pub const MAX_CATEGORIES: usize = 40;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

pub const GREEN: RGBColor = RGBColor(46, 160, 67);
pub const RED: RGBColor = RGBColor(214, 39, 40);
pub const GREY: RGBColor = RGBColor(150, 150, 150);
pub const INK: RGBColor = RGBColor(40, 40, 40);

/// A categorical colour: tab10 first (what people are used to), then tab20's light companions,
/// then plotters' Palette99 (whose first colours are too close to tab10's to follow it).
pub fn color(i: usize) -> RGBColor {
    const TAB10: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    const TAB20_LIGHT: [RGBColor; 10] = [
        RGBColor(174, 199, 232),
        RGBColor(255, 187, 120),
        RGBColor(152, 223, 138),
        RGBColor(255, 152, 150),
        RGBColor(197, 176, 213),
        RGBColor(196, 156, 148),
        RGBColor(247, 182, 210),
        RGBColor(199, 199, 199),
        RGBColor(219, 219, 141),
        RGBColor(158, 218, 229),
    ];
    if i < TAB10.len() {
        return TAB10[i];
    }
    if i < 20 {
        return TAB20_LIGHT[i - 10];
    }
    let c = Palette99::pick(i - 20).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The largest picture we draw (about 120 MB of pixels).
pub const MAX_PIXELS: u64 = 40_000_000;

/// Refuse a picture too large to hold, before allocating it.
pub fn check_size(w: u32, h: u32, what: &str) -> Result<()> {
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(crate::CurateError::Plot { what: what.into(), message: format!("{w}×{h} pixels is too large (at most {MAX_PIXELS}); show fewer samples, categories or smaller tiles") });
    }
    Ok(())
}

/// Draw into a fresh white `w`×`h` picture.
pub fn render(w: u32, h: u32, what: &str, draw: impl FnOnce(&Area) -> Result<()>) -> Result<RgbImage> {
    fonts();
    check_size(w, h, what)?;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err(what))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| crate::CurateError::Plot { what: what.into(), message: "buffer size".into() })
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

/// Text width in pixels at `size`.
pub fn text_width(text: &str, size: u32) -> u32 {
    fonts();
    font(size).font.box_size(text).map(|(w, _)| w).unwrap_or((text.len() as u32) * size / 2)
}

fn label_area(names: &[String], size: u32) -> u32 {
    names.iter().map(|n| text_width(n, size)).max().unwrap_or(0) + 14
}

/// Category names cut to a readable length.
fn short_names(names: &[String]) -> Vec<String> {
    names.iter().map(|n| ellipsize(n, MAX_LABEL, false)).collect()
}

/// A histogram of one or more series over shared bins, stacked.
pub fn histogram(series: &[(String, Vec<f64>)], bins: usize, title: &str, x_desc: &str) -> Result<RgbImage> {
    let bins = bins.max(1);
    let all = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let step = (hi - lo) / bins as f64;
    let mut counts = vec![vec![0u64; bins]; series.len()];
    for (s, (_, values)) in series.iter().enumerate() {
        for v in values.iter().filter(|v| v.is_finite()) {
            let b = (((v - lo) / step) as usize).min(bins - 1);
            counts[s][b] += 1;
        }
    }
    let top = (0..bins).map(|b| counts.iter().map(|c| c[b]).sum::<u64>()).max().unwrap_or(0).max(1);
    render(WIDTH, HEIGHT, "histogram", |root| {
        root.fill(&WHITE).map_err(draw_err("histogram"))?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(lo..hi, 0f64..(top as f64 * 1.08))
            .map_err(draw_err("histogram"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("samples")
            .label_style(font(14))
            .axis_desc_style(font(15))
            .light_line_style(WHITE)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(draw_err("histogram"))?;
        let mut base = vec![0u64; bins];
        for (s, (name, _)) in series.iter().enumerate() {
            let c = color(s);
            let rects: Vec<_> = (0..bins)
                .filter(|&b| counts[s][b] > 0)
                .map(|b| {
                    let x0 = lo + step * b as f64;

                    Rectangle::new([(x0, base[b] as f64), (x0 + step, (base[b] + counts[s][b]) as f64)], c.filled())
                })
                .collect();
            for b in 0..bins {
                base[b] += counts[s][b];
            }
            let drawn = chart.draw_series(rects).map_err(draw_err("histogram"))?;
            if series.len() > 1 {
                drawn.label(ellipsize(name, MAX_LABEL, false)).legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
            }
        }
        // Thin white gaps between bins keep neighbouring bars apart.
        chart
            .draw_series((1..bins).map(|b| {
                let x = lo + step * b as f64;
                PathElement::new(vec![(x, 0.0), (x, top as f64 * 1.08)], WHITE.stroke_width(1))
            }))
            .map_err(draw_err("histogram"))?;
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .label_font(font(14))
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(draw_err("histogram"))?;
        }
        Ok(())
    })
}

/// Horizontal bars: one band per category (top to bottom as given), one bar per group in it.
/// `counts[g][c]` is group g's count for category c.
pub fn bars(categories: &[String], groups: &[String], counts: &[Vec<f64>], title: &str, value_desc: &str) -> Result<RgbImage> {
    let names = short_names(categories);
    let n = names.len().max(1);
    let g = groups.len().max(1);
    let band = (14 * g as u32 + 10).max(26);
    let h = (n as u32 * band + 130).clamp(240, 4000);
    let left = label_area(&names, 14);
    let top = counts.iter().flatten().copied().fold(0.0f64, f64::max).max(1.0);
    render(WIDTH, h, "bar chart", |root| {
        root.fill(&WHITE).map_err(draw_err("bar chart"))?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(22))
            .margin(16)
            .margin_left(16 + left)
            .x_label_area_size(44)
            .y_label_area_size(0)
            .build_cartesian_2d(0f64..top * 1.15, 0f64..n as f64)
            .map_err(draw_err("bar chart"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(value_desc)
            .label_style(font(14))
            .axis_desc_style(font(15))
            .light_line_style(WHITE)
            .x_label_formatter(&tick)
            .draw()
            .map_err(draw_err("bar chart"))?;
        let sub = 0.8 / g as f64;
        for (gi, group) in groups.iter().enumerate().take(g) {
            let c = color(gi);
            let rects: Vec<_> = (0..names.len())
                .map(|ci| {
                    let y1 = (n - ci) as f64 - 0.1 - sub * gi as f64;
                    Rectangle::new([(0.0, y1 - sub), (counts[gi][ci], y1)], c.filled())
                })
                .collect();
            let drawn = chart.draw_series(rects).map_err(draw_err("bar chart"))?;
            if groups.len() > 1 {
                drawn.label(ellipsize(group, MAX_LABEL, false)).legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
            }
            // The value at the end of each bar.
            let labels: Vec<_> = (0..names.len())
                .filter(|&ci| g <= 4 || counts[gi][ci] > 0.0)
                .map(|ci| {
                    let y = (n - ci) as f64 - 0.1 - sub * gi as f64 - sub / 2.0;
                    Text::new(number(counts[gi][ci]), (counts[gi][ci] + top * 0.01, y), font(12).pos(Pos::new(HPos::Left, VPos::Center)))
                })
                .collect();
            chart.draw_series(labels).map_err(draw_err("bar chart"))?;
        }
        for (ci, name) in names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (n - ci) as f64 - 0.5));
            root.draw(&Text::new(name.clone(), (x - 8, y), font(14).pos(Pos::new(HPos::Right, VPos::Center)))).map_err(draw_err("bar chart"))?;
        }
        if groups.len() > 1 {
            chart
                .configure_series_labels()
                .label_font(font(14))
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(draw_err("bar chart"))?;
        }
        Ok(())
    })
}

/// An axis tick: 20.0 → "20", 0.25 → "0.25".
fn tick(v: &f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", *v as i64);
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 0.904 → "0.904", 12.0 → "12".
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A confusion matrix: rows are labels, columns predictions; cells shaded by the share of
/// their row (so a rare class's errors show as clearly as a common one's), with the count in it.
pub fn heatmap(rows: &[String], cols: &[String], counts: &[Vec<u64>], title: &str, row_desc: &str, col_desc: &str) -> Result<RgbImage> {
    let rnames = short_names(rows);
    let cnames = short_names(cols);
    let left = label_area(&rnames, 14) + 28;
    let cell_w = cnames.iter().map(|c| text_width(c, 13) + 12).max().unwrap_or(40).clamp(48, 140);
    let cell_h = 32u32;
    let top = 90u32;
    let note = "cells shaded by their share of the row: green on the diagonal, red off it";
    if rows.len() > MAX_CATEGORIES * 2 || cols.len() > MAX_CATEGORIES * 2 {
        return Err(crate::CurateError::Plot { what: "heat map".into(), message: format!("{} × {} classes are too many to read; filter to the classes of interest first", rows.len(), cols.len()) });
    }
    let w = (left + cell_w * cnames.len() as u32 + 30).max(text_width(title, 20) + 40).max(left + text_width(note, 12) + 20).max(420);
    let h = top + cell_h * rnames.len() as u32 + 50;
    render(w, h, "heat map", |root| {
        root.fill(&WHITE).map_err(draw_err("heat map"))?;
        let e = draw_err("heat map");
        root.draw(&Text::new(title.to_string(), ((w / 2) as i32, 12), font(20).pos(Pos::new(HPos::Center, VPos::Top)))).map_err(&e)?;
        let grid_w = cell_w * cnames.len() as u32;
        root.draw(&Text::new(col_desc.to_string(), ((left + grid_w / 2) as i32, 44), font(14).pos(Pos::new(HPos::Center, VPos::Top)))).map_err(&e)?;
        let desc = font(14).transform(FontTransform::Rotate270);
        root.draw(&Text::new(row_desc.to_string(), (10, (top + cell_h * rnames.len() as u32 / 2) as i32), desc.pos(Pos::new(HPos::Center, VPos::Top)))).map_err(&e)?;
        for (j, c) in cnames.iter().enumerate() {
            let x = left + cell_w * j as u32 + cell_w / 2;
            root.draw(&Text::new(c.clone(), (x as i32, (top - 6) as i32), font(13).pos(Pos::new(HPos::Center, VPos::Bottom)))).map_err(&e)?;
        }
        for (i, r) in rnames.iter().enumerate() {
            let total: u64 = counts[i].iter().sum();
            let y0 = top + cell_h * i as u32;
            root.draw(&Text::new(r.clone(), ((left - 8) as i32, (y0 + cell_h / 2) as i32), font(14).pos(Pos::new(HPos::Right, VPos::Center)))).map_err(&e)?;
            for j in 0..cnames.len() {
                let n = counts[i][j];
                let share = if total == 0 { 0.0 } else { n as f64 / total as f64 };
                let fill = if rows.get(i) == cols.get(j) { blend(RGBColor(255, 255, 255), GREEN, share) } else { blend(RGBColor(255, 255, 255), RED, share) };
                let x0 = left + cell_w * j as u32;
                root.draw(&Rectangle::new([(x0 as i32, y0 as i32), ((x0 + cell_w) as i32, (y0 + cell_h) as i32)], fill.filled())).map_err(&e)?;
                root.draw(&Rectangle::new([(x0 as i32, y0 as i32), ((x0 + cell_w) as i32, (y0 + cell_h) as i32)], RGBColor(220, 220, 220).stroke_width(1))).map_err(&e)?;
                let ink = if share > 0.55 { WHITE } else { INK };
                root.draw(&Text::new(n.to_string(), ((x0 + cell_w / 2) as i32, (y0 + cell_h / 2) as i32), font(13).color(&ink).pos(Pos::new(HPos::Center, VPos::Center)))).map_err(&e)?;
            }
        }
        root.draw(&Text::new(note.to_string(), (left as i32, (h - 24) as i32), font(12).color(&GREY).pos(Pos::new(HPos::Left, VPos::Top)))).map_err(&e)?;
        Ok(())
    })
}

fn blend(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One data unit test's outcome, for the pass/fail chart.
#[derive(Debug, Clone)]
pub struct TestBar {
    pub name: String,
    /// `Some(true)` passed, `Some(false)` failed, `None` errored.
    pub passed: Option<bool>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// How the value compares with the threshold (">=", "<", ...).
    pub op: String,
}

/// Per-test bars: the measured value, a tick at the threshold, green when the test passed and
/// red when it failed; errors are grey. Rates are drawn on one 0–1 scale; a test whose value or
/// threshold exceeds 1 (a count) is drawn relative to the larger of the two.
pub fn tests(bars: &[TestBar], title: &str) -> Result<RgbImage> {
    let names: Vec<String> = bars.iter().map(|b| ellipsize(&b.name, 40, false)).collect();
    let n = names.len().max(1);
    let h = (n as u32 * 30 + 130).clamp(240, 6000);
    let left = label_area(&names, 14) + 14;
    let passed = bars.iter().filter(|b| b.passed == Some(true)).count();
    render(WIDTH, h, "test chart", |root| {
        let e = draw_err("test chart");
        root.fill(&WHITE).map_err(&e)?;
        let caption = format!("{title}: {passed} / {} passed", bars.len());
        let mut chart = ChartBuilder::on(root)
            .caption(caption, font(22))
            .margin(16)
            .margin_left(16 + left)
            .margin_right(150)
            .x_label_area_size(44)
            .y_label_area_size(0)
            .build_cartesian_2d(0f64..1.1, 0f64..n as f64)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("value (rates on 0–1; counts relative to the larger of value and threshold)")
            .label_style(font(13))
            .axis_desc_style(font(13))
            .light_line_style(WHITE)
            .x_label_formatter(&tick)
            .draw()
            .map_err(&e)?;
        for (i, b) in bars.iter().enumerate() {
            let y1 = (n - i) as f64 - 0.15;
            let y0 = y1 - 0.7;
            let (color, text) = match (b.passed, b.value) {
                (None, _) => (GREY, "error".to_string()),
                (Some(p), v) => (
                    if p { GREEN } else { RED },
                    match (v, b.threshold) {
                        (Some(v), Some(t)) => format!("{} {} {} {}", number(v), b.op, number(t), if p { "✓" } else { "✗" }),
                        (Some(v), None) => format!("{} {}", number(v), if p { "✓" } else { "✗" }),
                        _ => (if p { "pass" } else { "fail" }).to_string(),
                    },
                ),
            };
            let scale = match (b.value, b.threshold) {
                (Some(v), Some(t)) if v.abs() > 1.0 || t.abs() > 1.0 => v.abs().max(t.abs()),
                (Some(v), None) if v.abs() > 1.0 => v.abs(),
                _ => 1.0,
            };
            let len = match (b.passed, b.value) {
                (None, _) => 1.0,
                (_, Some(v)) => (v / scale).clamp(0.0, 1.1),
                (Some(_), None) => 1.0,
            };
            chart.draw_series([Rectangle::new([(0.0, y0), (len.max(0.004), y1)], color.filled())]).map_err(&e)?;
            if let Some(t) = b.threshold {
                let x = (t / scale).clamp(0.0, 1.1);
                chart.draw_series([PathElement::new(vec![(x, y0 - 0.1), (x, y1 + 0.1)], INK.stroke_width(2))]).map_err(&e)?;
            }
            let (x, y) = chart.backend_coord(&(1.1, (y0 + y1) / 2.0));
            root.draw(&Text::new(text, (x + 8, y), font(13).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(&e)?;
            let (x, y) = chart.backend_coord(&(0.0, (y0 + y1) / 2.0));
            root.draw(&Text::new(names[i].clone(), (x - 8, y), font(14).pos(Pos::new(HPos::Right, VPos::Center)))).map_err(&e)?;
        }
        Ok(())
    })
}

/// A precision–recall curve (recall on x), with the average precision in the title and the
/// model's operating point marked.
pub fn pr_curve(points: &[(f64, f64)], title: &str, operating: Option<(f64, f64)>) -> Result<RgbImage> {
    render(WIDTH.min(720), HEIGHT, "PR curve", |root| {
        let e = draw_err("PR curve");
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(root).caption(title, font(20)).margin(16).x_label_area_size(48).y_label_area_size(60).build_cartesian_2d(0f64..1.0, 0f64..1.02).map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("recall")
            .y_desc("precision")
            .label_style(font(14))
            .axis_desc_style(font(15))
            .light_line_style(RGBColor(242, 242, 242))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(&e)?;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color(0).stroke_width(3)))
            .map_err(&e)?
            .label("precision at each score threshold")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(0).stroke_width(3)));
        if let Some(op) = operating {
            chart
                .draw_series([Circle::new(op, 7, RED.filled())])
                .map_err(&e)?
                .label(format!("model's prediction: recall {:.3}, precision {:.3}", op.0, op.1))
                .legend(|(x, y)| Circle::new((x + 8, y), 6, RED.filled()));
        }
        chart.configure_series_labels().label_font(font(13)).background_style(WHITE.mix(0.9)).border_style(GREY).position(SeriesLabelPosition::LowerLeft).draw().map_err(&e)?;
        Ok(())
    })
}

/// A scatter of 2-D points coloured by category, highlighted points drawn last, larger and
/// ringed. `category[i]` indexes `names`.
pub fn scatter(points: &[(f64, f64)], category: &[usize], names: &[String], highlight: &[bool], title: &str, axes: (&str, &str)) -> Result<RgbImage> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
    }
    let pad = |a: f64, b: f64| ((b - a) * 0.05).max(1e-6);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let legend_w = label_area(&short_names(names), 14) + 40;
    render(WIDTH + legend_w.min(300), 700, "embedding map", |root| {
        let e = draw_err("embedding map");
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(20))
            .margin(16)
            .margin_right(16 + legend_w.min(300))
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style(font(13))
            .axis_desc_style(font(14))
            .light_line_style(RGBColor(242, 242, 242))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(&e)?;
        for (c, _) in names.iter().enumerate() {
            let col = color(c);
            chart.draw_series(points.iter().zip(category).zip(highlight).filter(|((_, &k), &h)| k == c && !h).map(|((&p, _), _)| Circle::new(p, 3, col.mix(0.75).filled()))).map_err(&e)?;
        }
        let hi: Vec<_> = points.iter().zip(category).zip(highlight).filter(|(_, &h)| h).map(|((&p, &k), _)| (p, k)).collect();
        chart.draw_series(hi.iter().map(|&(p, k)| Circle::new(p, 7, color(k).filled()))).map_err(&e)?;
        chart.draw_series(hi.iter().map(|&(p, _)| Circle::new(p, 8, BLACK.stroke_width(2)))).map_err(&e)?;
        // The legend, outside the plot on the right.
        let (lx, ly) = chart.backend_coord(&(x1 + px, y1 + py));
        for (c, name) in short_names(names).iter().enumerate() {
            let y = ly + 10 + 20 * c as i32;
            root.draw(&Circle::new((lx + 24, y), 5, color(c).filled())).map_err(&e)?;
            root.draw(&Text::new(name.clone(), (lx + 36, y), font(14).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(&e)?;
        }
        if !hi.is_empty() {
            let y = ly + 10 + 20 * names.len() as i32 + 6;
            root.draw(&Circle::new((lx + 24, y), 8, BLACK.stroke_width(2))).map_err(&e)?;
            root.draw(&Text::new(format!("selected ({})", hi.len()), (lx + 36, y), font(14).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(&e)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(img: &RgbImage, w: u32, h: u32) {
        assert_eq!((img.width(), img.height()), (w, h));
        assert!(!super::super::is_blank(img));
        // Text is drawn: some dark pixels exist (the bundled font rendered).
        assert!(img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count() > 200, "no dark ink: no text?");
    }

    #[test]
    fn text_is_measured_with_the_bundled_font() {
        let w = text_width("automobile", 14);
        assert!((50..110).contains(&w), "{w}");
        assert!(text_width("iiii", 14) < text_width("WWWW", 14));
    }

    #[test]
    fn histogram_bars_and_heatmap_render() {
        let img = histogram(&[("a".into(), (0..100).map(|i| i as f64 / 10.0).collect())], 10, "h", "x").expect("hist");
        check(&img, WIDTH, HEIGHT);
        let img = bars(&["cat".into(), "dog".into()], &["train".into(), "test".into()], &[vec![3.0, 4.0], vec![1.0, 2.0]], "b", "samples").expect("bars");
        assert!(!super::super::is_blank(&img));
        let img = heatmap(&["a".into(), "b".into()], &["a".into(), "b".into()], &[vec![5, 1], vec![0, 7]], "c", "label", "prediction").expect("heat");
        assert!(!super::super::is_blank(&img));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.9041), "0.904");
        assert_eq!(number(1234.56), "1234.6");
    }
}
