//! Import COCO instances JSON as image-level labels: the categories present in each image, and
//! a person/no-person label as Visual Wake Words derives it (a person box covering at least
//! `min_person_area` of the image; VWW uses 0.5%).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Deserialize;

use super::stored_path;
use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct CocoOptions {
    /// The folder holding the images; defaults to the JSON's folder.
    pub images: Option<PathBuf>,
    /// The category that makes an image a `person` image.
    pub person_category: String,
    /// The smallest box area, as a fraction of the image, that counts as a person.
    pub min_person_area: f64,
}

impl Default for CocoOptions {
    fn default() -> Self {
        CocoOptions { images: None, person_category: "person".to_string(), min_person_area: 0.005 }
    }
}

#[derive(Deserialize)]
struct Coco {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: i64,
    file_name: String,
    width: Option<f64>,
    height: Option<f64>,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: i64,
    category_id: i64,
    #[serde(default)]
    bbox: Vec<f64>,
    area: Option<f64>,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: i64,
    name: String,
}

pub(super) fn read(ws: &Workspace, source: &Path, opts: &CocoOptions) -> Result<DataFrame> {
    let url = |p: &Path| p.to_str().filter(|s| crate::objects::is_url(s)).map(str::to_string);
    let text = match url(source) {
        Some(u) => String::from_utf8(crate::objects::read(&u).map_err(|e| CurateError::import(source, e))?).map_err(|e| CurateError::import(source, format!("not UTF-8 text: {e}")))?,
        None => std::fs::read_to_string(source).map_err(|e| CurateError::io(source, e))?,
    };
    // Images in object storage: under `--images` when it is a URL, else beside a JSON that is.
    let base_url = match &opts.images {
        Some(dir) => url(dir),
        None => url(source).map(|u| u.rsplit_once('/').map_or(u.clone(), |(b, _)| b.to_string())),
    };
    let coco: Coco = serde_json::from_str(&text).map_err(|e| CurateError::import(source, format!("not COCO instances JSON: {e}")))?;
    let names: HashMap<i64, &str> = coco.categories.iter().map(|c| (c.id, c.name.as_str())).collect();
    let image_ids: BTreeSet<i64> = coco.images.iter().map(|i| i.id).collect();
    let sizes: HashMap<i64, (Option<f64>, Option<f64>)> = coco.images.iter().map(|i| (i.id, (i.width, i.height))).collect();

    let mut cats: HashMap<i64, BTreeSet<&str>> = HashMap::new();
    let mut objects: HashMap<i64, u32> = HashMap::new();
    let mut person_area: HashMap<i64, f64> = HashMap::new();
    for (n, a) in coco.annotations.iter().enumerate() {
        let Some(name) = names.get(&a.category_id) else {
            return Err(CurateError::import(source, format!("annotation {n}: unknown category_id {}", a.category_id)));
        };
        if !image_ids.contains(&a.image_id) {
            return Err(CurateError::import(source, format!("annotation {n}: unknown image_id {}", a.image_id)));
        }
        cats.entry(a.image_id).or_default().insert(name);
        *objects.entry(a.image_id).or_default() += 1;
        if *name == opts.person_category {
            let box_area = match a.bbox.as_slice() {
                [_, _, w, h] => w * h,
                _ => a.area.unwrap_or(0.0),
            };
            let frac = match sizes.get(&a.image_id) {
                Some((Some(w), Some(h))) if w * h > 0.0 => box_area / (w * h),
                _ => 0.0,
            };
            let e = person_area.entry(a.image_id).or_insert(0.0);
            *e = e.max(frac);
        }
    }

    let base = opts.images.clone().unwrap_or_else(|| source.parent().unwrap_or(Path::new(".")).to_path_buf());
    let n = coco.images.len();
    let (mut ids, mut paths, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut coco_ids, mut categories, mut n_objects, mut areas, mut is_person) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for img in &coco.images {
        let area = person_area.get(&img.id).copied().unwrap_or(0.0);
        let person = person_area.contains_key(&img.id) && area >= opts.min_person_area;
        ids.push(Path::new(&img.file_name).with_extension("").to_string_lossy().into_owned());
        paths.push(match &base_url {
            Some(b) => crate::objects::join(b, &img.file_name),
            None => stored_path(ws, &base.join(&img.file_name)),
        });
        labels.push(if person { "person" } else { "no_person" });
        coco_ids.push(img.id);
        let list: Vec<&str> = cats.get(&img.id).map(|s| s.iter().copied().collect()).unwrap_or_default();
        categories.push(Series::new("".into(), list));
        n_objects.push(objects.get(&img.id).copied().unwrap_or(0));
        areas.push(area);
        is_person.push(person);
    }
    let split = split_from_name(source);
    let mut df = df!(
        "id" => ids,
        "path" => paths,
        "label" => labels,
        "person" => is_person,
        "person_area" => areas,
        "n_objects" => n_objects,
        "coco_id" => coco_ids,
    )?;
    let mut cat_col = Series::new("categories".into(), categories);
    if cat_col.dtype() != &DataType::List(Box::new(DataType::String)) {
        cat_col = cat_col.cast(&DataType::List(Box::new(DataType::String)))?;
    }
    df.with_column(cat_col.into_column())?;
    if let Some(split) = split {
        df.with_column(Column::new("split".into(), vec![split; df.height()]))?;
    }
    Ok(df)
}

/// `instances_train2017.json` is the train split, `instances_val2017.json` the val split.
fn split_from_name(source: &Path) -> Option<&'static str> {
    let stem = source.file_stem()?.to_str()?.to_ascii_lowercase();
    if stem.contains("train") {
        Some("train")
    } else if stem.contains("val") {
        Some("val")
    } else if stem.contains("test") {
        Some("test")
    } else {
        None
    }
}
