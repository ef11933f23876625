//! Import an image folder: the class is the sub-folder, and a top-level `train/`, `val/` or
//! `test/` folder gives the split (`train/cat/0001.jpg`).

use std::path::Path;

use polars::prelude::*;

use super::{id_from_rel, is_image, stored_path};
use crate::error::{CurateError, Result};
use crate::workspace::Workspace;

const SPLITS: [&str; 6] = ["train", "val", "valid", "validation", "test", "holdout"];

pub(super) fn read(ws: &Workspace, source: &Path) -> Result<DataFrame> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(source).sort_by_file_name().follow_links(true) {
        let entry = entry.map_err(|e| CurateError::import(source, e))?;
        if entry.file_type().is_file() && is_image(entry.path()) {
            files.push(entry.into_path());
        }
    }
    if files.is_empty() {
        return Err(CurateError::import(source, "no image files found in this folder"));
    }
    let (mut ids, mut paths, mut labels, mut splits) = (vec![], vec![], vec![], vec![]);
    for file in &files {
        let rel = file.strip_prefix(source).unwrap_or(file);
        let dirs: Vec<String> = rel
            .parent()
            .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let (split, label) = match dirs.as_slice() {
            [] => (None, None),
            [first, rest @ ..] if SPLITS.contains(&first.to_ascii_lowercase().as_str()) => {
                (Some(first.clone()), rest.last().cloned())
            }
            [.., last] => (None, Some(last.clone())),
        };
        ids.push(id_from_rel(rel));
        paths.push(stored_path(ws, file));
        labels.push(label);
        splits.push(split);
    }
    Ok(df!("id" => ids, "path" => paths, "label" => labels, "split" => splits)?)
}
