//! `ds.augment(#{ops, copies, seed})`: new images derived from a slice — flips, crops, 90°
//! rotations, brightness and contrast, blur, noise, grayscale — written as PNG under the
//! workspace's `augmented/` folder and added to the manifest with their `parent_id` and
//! `recipe`, through an `add` entry of the edit log (the manifest file is never rewritten under a
//! session that may be reading it). The output is a function of (seed, parent id, copy index): the same call gives the
//! same files, and running it again adds nothing.

use std::sync::Arc;

use curate_kernels::SplitMix;
use image::{DynamicImage, GenericImageView};
use polars::prelude::*;
use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext};
use serde_json::json;

use super::{Context, Example, Opt, Primitive};
use crate::dataset::Dataset;
use crate::error::{CurateError, Result};

pub const DOC: Primitive = Primitive {
    name: "augment",
    signatures: &["ds.augment(#{ops: [string], copies: int, seed: int}) -> Dataset", "ds.augment(slice, #{ops, copies, seed}) -> Dataset"],
    summary: "Write `copies` (1 by default) augmented versions of every sample of ds (or of \
              `slice`: ids or a dataset) to augmented/ in the workspace as PNG, and add them \
              through the edit log (an `add` entry) with the parent's columns plus `parent_id` \
              and `recipe` (the ops and the parameters drawn for that copy). ops: flip, crop, rotate (90/180/270), \
              brightness, contrast, blur, noise, grayscale (all but grayscale by default). \
              Deterministic for a seed. Returns the new samples.",
    options: &[
        Opt { name: "ops", default: "all but grayscale", help: "The operations to draw from: flip, crop, rotate (90/180/270), brightness, contrast, blur, noise, grayscale." },
        Opt { name: "copies", default: "1", help: "Augmented versions per sample." },
        Opt { name: "seed", default: "0", help: "The random seed; each copy's parameters depend only on (seed, parent id, copy)." },
    ],
    examples: &[Example {
        code: "let added = open().filter(\"class = 'frog'\").head(2).augment(#{copies: 2, ops: [\"flip\", \"blur\"], seed: 7}); [added.len(), open().len()]",
        result: Some("[4, 1404]"),
    }],
};

/// The keys of augment's options map.
pub const KEYS: &[&str] = &["ops", "copies", "seed"];

pub const OPS: &[&str] = &["flip", "crop", "rotate", "brightness", "contrast", "blur", "noise", "grayscale"];

/// The generator of one copy: SplitMix64 seeded from (seed, parent id, copy index), so each
/// copy's parameters are fixed whatever else is augmented.
pub fn copy_rng(seed: i64, id: &str, copy: usize) -> SplitMix {
    let h = blake3::hash(format!("{seed}/{id}/{copy}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    SplitMix(u64::from_le_bytes(b))
}

/// Uniform in [lo, hi).
fn range(rng: &mut SplitMix, lo: f64, hi: f64) -> f64 {
    lo + rng.unit() * (hi - lo)
}

/// Apply `ops` to `img`; the recipe records each op's drawn parameters.
pub fn apply(img: &DynamicImage, ops: &[String], rng: &mut SplitMix) -> (DynamicImage, Vec<serde_json::Value>) {
    let mut out = img.clone();
    let mut recipe = Vec::new();
    for op in ops {
        match op.as_str() {
            "flip" => {
                out = out.fliph();
                recipe.push(json!({"op": "flip"}));
            }
            "crop" => {
                let (w, h) = out.dimensions();
                let f = range(rng, 0.8, 1.0);
                let (cw, ch) = (((w as f64 * f).round() as u32).max(1), ((h as f64 * f).round() as u32).max(1));
                let x = (range(rng, 0.0, 1.0) * (w - cw + 1) as f64) as u32;
                let y = (range(rng, 0.0, 1.0) * (h - ch + 1) as f64) as u32;
                out = out.crop_imm(x, y, cw, ch).resize_exact(w, h, image::imageops::FilterType::Triangle);
                recipe.push(json!({"op": "crop", "x": x, "y": y, "w": cw, "h": ch}));
            }
            "rotate" => {
                let k = 1 + rng.next_u64() % 3;
                out = match k {
                    1 => out.rotate90(),
                    2 => out.rotate180(),
                    _ => out.rotate270(),
                };
                recipe.push(json!({"op": "rotate", "degrees": k * 90}));
            }
            "brightness" => {
                let d = range(rng, -40.0, 40.0).round() as i32;
                out = out.brighten(d);
                recipe.push(json!({"op": "brightness", "delta": d}));
            }
            "contrast" => {
                let c = (range(rng, -30.0, 30.0) * 10.0).round() / 10.0;
                out = out.adjust_contrast(c as f32);
                recipe.push(json!({"op": "contrast", "percent": c}));
            }
            "blur" => {
                let s = (range(rng, 0.3, 1.2) * 100.0).round() / 100.0;
                out = out.blur(s as f32);
                recipe.push(json!({"op": "blur", "sigma": s}));
            }
            "noise" => {
                let sigma = 8.0;
                let mut rgb = out.to_rgb8();
                for p in rgb.pixels_mut() {
                    for c in p.0.iter_mut() {
                        // The sum of four uniforms: roughly normal, and cheap.
                        let n = (range(rng, -1.0, 1.0) + range(rng, -1.0, 1.0) + range(rng, -1.0, 1.0) + range(rng, -1.0, 1.0)) * sigma * 0.866;
                        *c = (*c as f64 + n).round().clamp(0.0, 255.0) as u8;
                    }
                }
                out = DynamicImage::ImageRgb8(rgb);
                recipe.push(json!({"op": "noise", "sigma": sigma}));
            }
            "grayscale" => {
                out = DynamicImage::ImageRgb8(out.grayscale().to_rgb8());
                recipe.push(json!({"op": "grayscale"}));
            }
            _ => {}
        }
    }
    (out, recipe)
}

/// `line` is the script line of the call, for the edit log's source.
pub fn augment(ctx: &Context, ds: &Dataset, opts: &Map, line: Option<usize>) -> Result<Dataset> {
    let bad = |key: &str, m: String| CurateError::InvalidOption { function: "augment".into(), key: key.into(), message: m };
    for k in opts.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(CurateError::UnknownOption { function: "augment".into(), key: k.to_string(), valid: KEYS.iter().map(|k| k.to_string()).collect() });
        }
    }
    let ops: Vec<String> = match opts.get("ops") {
        None => OPS.iter().filter(|o| **o != "grayscale").map(|s| s.to_string()).collect(),
        Some(v) => crate::value::array_to_strings(&v.clone().into_array().map_err(|t| bad("ops", format!("expected an array of op names, found a {t}")))?).map_err(|m| bad("ops", m))?,
    };
    if let Some(o) = ops.iter().find(|o| !OPS.contains(&o.as_str())) {
        return Err(bad("ops", format!("`{o}` is not an op; ops: {}", OPS.join(", "))));
    }
    let copies = opts.get("copies").map(|v| v.as_int().map_err(|t| bad("copies", format!("expected an int, found a {t}")))).transpose()?.unwrap_or(1);
    if !(1..=100).contains(&copies) {
        return Err(bad("copies", format!("between 1 and 100, got {copies}")));
    }
    let seed = opts.get("seed").map(|v| v.as_int().map_err(|t| bad("seed", format!("expected an int, found a {t}")))).transpose()?.unwrap_or(0);
    let ws = ds.workspace().clone();
    // The parents as they are now (edits replayed), every column.
    let current = ws.scan_manifest()?.collect()?;
    let parents = ds.lazy().select([col("id")]).collect()?;
    let mut parent_ids: Vec<String> = parents.column("id")?.str()?.iter().flatten().map(str::to_string).collect();
    parent_ids.sort();
    let existing: std::collections::HashSet<String> = current.column("id")?.str()?.iter().flatten().map(str::to_string).collect();
    let rows_of: std::collections::HashMap<String, usize> = current.column("id")?.str()?.iter().enumerate().filter_map(|(i, id)| id.map(|id| (id.to_string(), i))).collect();
    let out_dir = ws.root().join("augmented");
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    let mut new_ids = Vec::new();
    ctx.progress.start("augmenting", (parent_ids.len() * copies as usize) as u64);
    for pid in &parent_ids {
        let Some(&row) = rows_of.get(pid) else { continue };
        let src_rel = current.column("path")?.str()?.get(row).unwrap_or_default().to_string();
        let src = ws.media_path(&src_rel);
        let mut img: Option<DynamicImage> = None;
        for k in 0..copies as usize {
            if ctx.progress.is_cancelled() {
                break;
            }
            ctx.progress.advance(1);
            let id = format!("{pid}~aug{seed}.{k}");
            if existing.contains(&id) {
                continue;
            }
            if img.is_none() {
                let data = crate::objects::read_any(&src).map_err(|e| CurateError::io(&src, e))?;
                img = Some(crate::preprocess::decode(&data).map_err(|e| CurateError::io(&src, format!("cannot decode: {e}")))?);
            }
            let Some(parent) = img.as_ref() else { continue };
            let mut rng = copy_rng(seed, pid, k);
            let (out, recipe) = apply(parent, &ops, &mut rng);
            let mut png = Vec::new();
            out.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| CurateError::io(&src, e))?;
            let file = out_dir.join(format!("{}.png", super::export::safe_component(&id)));
            if file.exists() {
                return Err(CurateError::io(&file, format!("already exists and is not `{id}`'s: another sample's augmented image (ids that differ only in characters made safe, or a removed augmented sample); remove the file or use another seed")));
            }
            crate::atomic::write_atomic(&file, |f| {
                use std::io::Write;
                f.write_all(&png).map_err(|e| CurateError::io(&file, e))
            })?;
            // The parent's columns, then what is new.
            let mut r = serde_json::Map::new();
            for c in current.columns() {
                if !c.name().starts_with("tag_") && c.name() != "weight" {
                    r.insert(c.name().to_string(), crate::output::any_to_json(&c.get(row)?));
                }
            }
            r.insert("id".into(), json!(id));
            r.insert("path".into(), json!(crate::import::stored_path(&ws, &file)));
            r.insert("hash".into(), json!(blake3::hash(&png).to_hex().to_string()));
            r.insert("width".into(), json!(out.width()));
            r.insert("height".into(), json!(out.height()));
            r.insert("bytes".into(), json!(png.len()));
            r.insert("format".into(), json!("png"));
            r.insert("source".into(), json!("augment"));
            r.insert("parent_id".into(), json!(pid));
            r.insert("recipe".into(), json!(serde_json::to_string(&json!({"seed": seed, "copy": k, "ops": recipe})).unwrap_or_default()));
            rows.push(r);
            new_ids.push(id);
        }
    }
    ctx.progress.finish();
    if ctx.progress.is_cancelled() {
        return Err(CurateError::Interrupted);
    }
    if !rows.is_empty() {
        let e = crate::edits::Edit {
            time: crate::edits::now(),
            action: "add".into(),
            ids: new_ids.clone(),
            column: None,
            value: None,
            old: vec![],
            rows,
            reason: format!("augment {} (seed {seed}, {copies} per sample)", ops.join("+")),
            source: super::edit::source_label(ctx, line),
        };
        crate::edits::append(&ws.edits_path(), &[e])?;
    }
    let view = Dataset::new(ws.clone(), ws.scan_manifest()?)?;
    let want = Series::new("id".into(), new_ids);
    view.derive(view.lazy().filter(col("id").is_in(lit(want).implode(false), false)))
}

pub fn register(engine: &mut Engine, ctx: &Arc<Context>) {
    let c = ctx.clone();
    engine.register_fn("augment", move |call: NativeCallContext, ds: &mut Dataset, opts: Map| -> std::result::Result<Dataset, Box<EvalAltResult>> {
        Ok(augment(&c, ds, &opts, call.call_position().line())?)
    });
    let c = ctx.clone();
    engine.register_fn("augment", move |call: NativeCallContext, ds: &mut Dataset, slice: Dynamic, opts: Map| -> std::result::Result<Dataset, Box<EvalAltResult>> {
        let ids = super::classify::ids_of("augment", "slice", &slice)?;
        let part = crate::probe::samples(ds.workspace(), &ids)?;
        Ok(augment(&c, &part, &opts, call.call_position().line())?)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        crate::testing::check_examples_in_copy(&super::DOC);
    }
}
