//! Pictures: charts (plotters) and contact sheets of thumbnails, rendered to PNG in memory.
//!
//! Text is drawn with a bundled DejaVu Sans through plotters' `ab_glyph` backend, so a fresh
//! machine or a CI runner renders the same labels without system fonts. Every picture is also
//! written to `.curate/out/<kind>-<hash>.png` (named by content, so re-running a script does not
//! pile up copies), which is what a terminal without inline images and the report link to.

pub mod chart;
pub mod grid;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use image::RgbImage;

use crate::error::{CurateError, Result};

/// The font every picture uses (DejaVu Sans, Bitstream Vera licence: `assets/fonts/`).
pub static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name pictures ask plotters for.
pub const FAMILY: &str = "sans-serif";

/// Register the bundled font with plotters, once per process.
pub fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use plotters::style::FontStyle;
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            // The font is compiled in and known good; a failure here would show as missing text
            // in every test picture.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// A rendered picture: PNG bytes, their size, a title, and the file they were saved to.
#[derive(Debug, Clone)]
pub struct Picture {
    pub title: String,
    pub png: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
    /// Where the picture was written (`.curate/out/...`), relative to the session root when it
    /// lies inside it.
    pub path: PathBuf,
}

impl Picture {
    /// Encode `img` as PNG and write it to `out_dir/<kind>-<hash>.png` atomically.
    pub fn save_new(img: &RgbImage, title: &str, kind: &str, out_dir: &Path) -> Result<Picture> {
        let png = encode_png(img)?;
        let hash = blake3::hash(&png).to_hex();
        let path = out_dir.join(format!("{kind}-{}.png", &hash[..12]));
        if !path.exists() {
            crate::atomic::write_bytes_atomic(&path, &png)?;
        }
        Ok(Picture { title: title.to_string(), png: Arc::new(png), width: img.width(), height: img.height(), path })
    }

    /// Show the path relative to `root` when it lies inside it.
    pub fn relative_to(mut self, root: &Path) -> Picture {
        if let Ok(rel) = self.path.strip_prefix(root) {
            self.path = rel.to_path_buf();
        }
        self
    }

    /// Copy the picture to `path` (atomically).
    pub fn save_as(&self, path: &Path) -> Result<()> {
        crate::atomic::write_bytes_atomic(path, &self.png)
    }

    /// One line for text front ends: title, size and where the file is.
    pub fn describe(&self) -> String {
        format!("[image {}×{}] {} → {}", self.width, self.height, self.title, self.path.display())
    }
}

/// PNG with fast (fdeflate) compression, stated rather than left to `image`'s default: encoding
/// is the larger part of a contact sheet's time (plot bench).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| CurateError::Plot { what: "PNG".into(), message: e.to_string() })?;
    Ok(png)
}

/// Where pictures of a session go: the workspace's `.curate/out/`, or `<root>/.curate/out/`.
pub fn out_dir(root: &Path) -> PathBuf {
    root.join(".curate").join("out")
}

/// A plotters error as ours.
pub(crate) fn draw_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> CurateError + '_ {
    move |e| CurateError::Plot { what: what.to_string(), message: e.to_string() }
}

/// Truncate `text` to at most `max` characters with an ellipsis, keeping the head or the tail.
pub fn ellipsize(text: &str, max: usize, keep_tail: bool) -> String {
    let n = text.chars().count();
    if n <= max || max == 0 {
        return text.to_string();
    }
    if keep_tail {
        let tail: String = text.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    } else {
        let head: String = text.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

/// Is a picture blank (every pixel the same)? Tests use it; so do we before showing one.
pub fn is_blank(img: &RgbImage) -> bool {
    let mut px = img.pixels();
    match px.next() {
        Some(first) => px.all(|p| p == first),
        None => true,
    }
}
