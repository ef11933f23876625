//! Import an image folder: the class is the sub-folder, and a top-level `train/`, `val/` or
//! `test/` folder gives the split (`train/cat/0001.jpg`).

use std::path::{Path, PathBuf};

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
    let rows = files.iter().map(|file| (file.strip_prefix(source).unwrap_or(file).to_path_buf(), stored_path(ws, file)));
    frame(rows)
}

/// A "folder" in object storage: every image object under the prefix `url`
/// (`s3://bucket/photos/`), labelled by its key as a local folder is by its path.
pub(super) fn read_remote(ws: &Workspace, url: &str) -> Result<DataFrame> {
    let source = Path::new(url);
    let prefix = format!("{}/", url.trim_end_matches('/'));
    let listed = crate::objects::list(&prefix).map_err(|e| CurateError::import(source, e))?;
    let media = format!("{}/", ws.config.media.trim_end_matches('/'));
    let remote_media = crate::objects::is_url(&ws.config.media);
    let rows: Vec<(PathBuf, String)> = listed
        .into_iter()
        .filter_map(|(object, _)| {
            let rel = object.strip_prefix(&prefix)?.to_string();
            is_image(Path::new(&rel)).then_some(())?;
            // Relative to a `media` root that is this store, else the whole URL.
            let stored = match object.strip_prefix(&media) {
                Some(under) if remote_media => under.to_string(),
                _ => object.clone(),
            };
            Some((PathBuf::from(rel), stored))
        })
        .collect();
    if rows.is_empty() {
        return Err(CurateError::import(source, "no image objects found under this prefix"));
    }
    frame(rows.into_iter())
}

/// id, path, label and split from each image's path relative to the source (`rel`) and the
/// path the manifest stores.
fn frame(files: impl Iterator<Item = (PathBuf, String)>) -> Result<DataFrame> {
    let (mut ids, mut paths, mut labels, mut splits) = (vec![], vec![], vec![], vec![]);
    for (rel, stored) in files {
        let dirs: Vec<String> = rel.parent().map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect()).unwrap_or_default();
        let (split, label) = match dirs.as_slice() {
            [] => (None, None),
            [first, rest @ ..] if SPLITS.contains(&first.to_ascii_lowercase().as_str()) => (Some(first.clone()), rest.last().cloned()),
            [.., last] => (None, Some(last.clone())),
        };
        ids.push(id_from_rel(&rel));
        paths.push(stored);
        labels.push(label);
        splits.push(split);
    }
    Ok(df!("id" => ids, "path" => paths, "label" => labels, "split" => splits)?)
}
