//! Outputs on a terminal. Pictures are drawn inline when the terminal speaks a graphics
//! protocol (kitty, iTerm2 or sixel, detected at run time by viuer's queries); otherwise, and
//! always when piped or in CI, the line naming the PNG under `.curate/out/` stands for it.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use curate_stdlib::output::Output;
use curate_stdlib::plot::Picture;

/// Whether pictures can be drawn inline on stdout (asked once per process).
pub fn inline_images() -> bool {
    static INLINE: OnceLock<bool> = OnceLock::new();
    *INLINE.get_or_init(|| {
        if !std::io::stdout().is_terminal() || std::env::var_os("CI").is_some() || std::env::var_os("CURATE_NO_INLINE").is_some() {
            return false;
        }
        // The kitty and sixel checks wait for the terminal's answer: do not ask one that
        // declares no capabilities.
        if matches!(std::env::var("TERM").as_deref(), Err(_) | Ok("" | "dumb")) {
            return false;
        }
        // iTerm2 is known from the environment; kitty and sixel need a query to the terminal.
        viuer::is_iterm_supported() || viuer::get_kitty_support() != viuer::KittySupport::None || viuer::is_sixel_supported()
    })
}

fn draw_inline(p: &Picture) -> bool {
    let Ok(img) = image::load_from_memory(&p.png) else { return false };
    let (cols, _) = viuer::terminal_size();
    // Pictures are wide; cap them at the terminal's width and at about 100 columns.
    let config = viuer::Config { absolute_offset: false, width: Some(u32::from(cols).clamp(20, 100)), ..Default::default() };
    let _ = std::io::stdout().flush();
    viuer::print(&img, &config).is_ok()
}

/// Print an output to stdout. Tables fit themselves to the terminal when there is one.
pub fn print_output(o: &Output) {
    if let Output::Image(p) = o {
        if inline_images() {
            draw_inline(p);
        }
    }
    let mut out = std::io::stdout().lock();
    // A closed pipe (`curate run x | head`) is not an error worth reporting.
    let _ = writeln!(out, "{}", o.render_text(None));
}
