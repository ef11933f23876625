//! Contact sheets: thumbnails in a grid with a caption under each, decoded in parallel. A file
//! that cannot be read becomes a grey tile that says so; it does not sink the sheet.

use std::path::PathBuf;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rayon::prelude::*;

use super::chart::{text_width, INK};
use super::{draw_err, fonts, FAMILY};
use crate::error::Result;

/// One thumbnail: the image file, caption lines, and an optional frame colour (a correct or
/// wrong prediction, the query of a row of neighbours).
#[derive(Debug, Clone, Default)]
pub struct Tile {
    pub path: Option<PathBuf>,
    pub lines: Vec<String>,
    pub frame: Option<RGBColor>,
}

const PAD: u32 = 8;
const LINE: u32 = 15;
const CAPTION_SIZE: u32 = 12;
const TITLE_H: u32 = 40;

/// Lay out `groups` of tiles: each group starts a new row and wraps after `cols` tiles. With
/// `lead`, a group's first tile (a query) keeps the first column to itself and the rest wrap
/// beside it.
pub fn contact_sheet(groups: &[Vec<Tile>], cols: usize, size: u32, title: &str, lead: bool) -> Result<RgbImage> {
    fonts();
    let cols = cols.max(if lead { 2 } else { 1 });
    let size = size.clamp(32, 512);
    let lines = groups.iter().flatten().map(|t| t.lines.len()).max().unwrap_or(0) as u32;
    let cell_w = size + 2 * PAD;
    let cell_h = size + 2 * PAD + 2 + lines * LINE;
    // Grid positions: (row, col) per tile, groups starting on fresh rows.
    let mut places = Vec::new();
    let mut row = 0usize;
    for group in groups {
        if lead {
            places.push((row, 0));
            let per_row = cols - 1;
            for i in 0..group.len().saturating_sub(1) {
                places.push((row + i / per_row, 1 + i % per_row));
            }
            row += group.len().saturating_sub(1).div_ceil(per_row).max(1);
        } else {
            for (i, _) in group.iter().enumerate() {
                places.push((row + i / cols, i % cols));
            }
            row += group.len().div_ceil(cols).max(1);
        }
    }
    let used_cols = groups.iter().map(|g| g.len().min(cols)).max().unwrap_or(1).max(1) as u32;
    let title_w = text_width(title, 18) + 2 * PAD;
    let w = (cell_w * used_cols).max(title_w.min(4000)).max(240);
    let h = (TITLE_H as u64 + cell_h as u64 * row.max(1) as u64).min(u32::MAX as u64) as u32;
    super::chart::check_size(w, h, "grid")?;
    let tiles: Vec<&Tile> = groups.iter().flatten().collect();
    let thumbs: Vec<std::result::Result<RgbImage, String>> = tiles.par_iter().map(|t| thumbnail(t.path.as_ref(), size)).collect();

    // Pixel work goes through curate-kernels (optimised even in dev builds).
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    for ((t, thumb), &(r, c)) in tiles.iter().zip(&thumbs).zip(&places) {
        let (x0, y0) = (c as u32 * cell_w + PAD, TITLE_H + r as u32 * cell_h + PAD);
        if let Some(f) = t.frame {
            let b = 3;
            curate_kernels::fill_rect(&mut buf, w, x0 - b, y0 - b, size + 2 * b, size + 2 * b, [f.0, f.1, f.2]);
        }
        // A light backdrop shows the tile's extent when the image does not fill it.
        curate_kernels::fill_rect(&mut buf, w, x0, y0, size, size, [236, 236, 236]);
        if let Ok(th) = thumb {
            let (ox, oy) = (x0 + (size - th.width()) / 2, y0 + (size - th.height()) / 2);
            curate_kernels::blit(&mut buf, w, th.as_raw(), th.width(), ox, oy);
        }
    }
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = draw_err("grid");
        let style = |size: u32| (FAMILY, size).into_font().color(&INK);
        root.draw(&Text::new(title.to_string(), (PAD as i32, 12), style(18).pos(Pos::new(HPos::Left, VPos::Top)))).map_err(&e)?;
        for ((t, thumb), &(r, c)) in tiles.iter().zip(&thumbs).zip(&places) {
            let (x0, y0) = (c as u32 * cell_w + PAD, TITLE_H + r as u32 * cell_h + PAD);
            if let Err(why) = thumb {
                let msg = fit(why, size - 6, false);
                root.draw(&Text::new(msg, ((x0 + size / 2) as i32, (y0 + size / 2) as i32), style(CAPTION_SIZE).color(&super::chart::RED).pos(Pos::new(HPos::Center, VPos::Center)))).map_err(&e)?;
            }
            for (k, line) in t.lines.iter().enumerate() {
                // The first line is the id: its end (the file name) says more than its start.
                let text = fit(line, size + PAD, k == 0);
                let y = y0 + size + 6 + k as u32 * LINE;
                root.draw(&Text::new(text, (x0 as i32, y as i32), style(CAPTION_SIZE).pos(Pos::new(HPos::Left, VPos::Top)))).map_err(&e)?;
            }
        }
        root.present().map_err(&e)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| crate::CurateError::Plot { what: "grid".into(), message: "buffer size".into() })
}

/// Cut `text` until it fits `width` pixels at the caption size.
fn fit(text: &str, width: u32, keep_tail: bool) -> String {
    if text_width(text, CAPTION_SIZE) <= width {
        return text.to_string();
    }
    let n = text.chars().count();
    for keep in (1..n).rev() {
        let t = super::ellipsize(text, keep, keep_tail);
        if text_width(&t, CAPTION_SIZE) <= width {
            return t;
        }
    }
    "…".to_string()
}

/// Decode and fit an image into `size`×`size`, keeping its aspect. Small images are enlarged
/// with nearest-neighbour sampling so their real pixels stay visible.
pub fn thumbnail(path: Option<&PathBuf>, size: u32) -> std::result::Result<RgbImage, String> {
    let Some(path) = path else { return Err("no file".to_string()) };
    let bytes = match path.to_str() {
        Some(url) if crate::objects::is_url(url) => crate::objects::read(url).map_err(|e| if e.ends_with("not found") { "missing: not found".to_string() } else { e })?,
        _ => std::fs::read(path).map_err(|e| format!("missing: {}", e.kind()))?,
    };
    let img = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| format!("unreadable: {e}"))?.decode().map_err(|_| "unreadable image".to_string())?.to_rgb8();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err("empty image".to_string());
    }
    let scale = (size as f64 / w as f64).min(size as f64 / h as f64);
    let (tw, th) = (((w as f64 * scale).round() as u32).clamp(1, size), ((h as f64 * scale).round() as u32).clamp(1, size));
    let pixels = curate_kernels::resize_with(img.into_raw(), w, h, 3, tw, th, scale >= 2.0)?;
    RgbImage::from_raw(tw, th, pixels).ok_or_else(|| "resize".to_string())
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    #[test]
    fn unreadable_files_become_marked_tiles() {
        let dir = tempfile::tempdir().expect("tmp");
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not a png").expect("write");
        let good = dir.path().join("good.png");
        RgbImage::from_pixel(40, 20, Rgb([200, 30, 30])).save(&good).expect("save");
        let tiles = vec![
            Tile { path: Some(good), lines: vec!["good".into()], frame: None },
            Tile { path: Some(bad), lines: vec!["bad".into()], frame: None },
            Tile { path: Some(dir.path().join("gone.png")), lines: vec!["gone".into()], frame: None },
        ];
        let img = contact_sheet(&[tiles], 2, 128, "t", false).expect("sheet");
        // 2 columns × 2 rows of 128 + padding, plus the title and one caption line.
        assert_eq!(img.width(), 2 * (128 + 2 * PAD));
        assert_eq!(img.height(), TITLE_H + 2 * (128 + 2 * PAD + 2 + LINE));
        // The good image's red fills its tile's middle row (40×20 fitted to 128×64).
        let mid = img.get_pixel(PAD + 64, TITLE_H + PAD + 64);
        assert_eq!(mid.0, [200, 30, 30]);
        assert!(thumbnail(Some(&dir.path().join("bad.png")), 64).is_err());
    }
}
