//! Syntax highlighting for the input line: keywords, strings, numbers, comments, and the names of
//! primitives and meta-commands.

use nu_ansi_term::{Color, Style};
use reedline::{Highlighter, StyledText};

pub struct CurateHighlighter;

const KEYWORDS: &[&str] =
    &["let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "break", "continue", "return", "true", "false", "switch", "throw", "try", "catch", "this", "private"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Plain,
    Keyword,
    Primitive,
    String,
    Number,
    Comment,
    Meta,
}

impl Highlighter for CurateHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut out = StyledText::new();
        for (class, text) in classify(line) {
            let style = match class {
                Class::Plain => Style::new(),
                Class::Keyword => Style::new().fg(Color::Purple).bold(),
                Class::Primitive => Style::new().fg(Color::Cyan),
                Class::String => Style::new().fg(Color::Green),
                Class::Number => Style::new().fg(Color::Yellow),
                Class::Comment => Style::new().fg(Color::DarkGray).italic(),
                Class::Meta => Style::new().fg(Color::Blue).bold(),
            };
            out.push((style, text.to_string()));
        }
        out
    }
}

/// Split a line into classified pieces; the pieces concatenate back to the line.
pub fn classify(line: &str) -> Vec<(Class, &str)> {
    let mut out = Vec::new();
    if line.trim_start().starts_with(':') {
        let end = line.find(char::is_whitespace).unwrap_or(line.len());
        out.push((Class::Meta, &line[..end]));
        if end < line.len() {
            out.push((Class::Plain, &line[end..]));
        }
        return out;
    }
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let c = line[i..].chars().next().unwrap_or(' ');
        let start = i;
        let class = if c == '/' && bytes.get(i + 1) == Some(&b'/') {
            i = line.len();
            Class::Comment
        } else if c == '"' || c == '`' || c == '\'' {
            i += 1;
            let mut escaped = false;
            while i < line.len() {
                let d = line[i..].chars().next().unwrap_or(' ');
                i += d.len_utf8();
                if d == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if d == c && !escaped {
                    break;
                }
                escaped = false;
            }
            Class::String
        } else if c.is_ascii_digit() {
            while i < line.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                i += 1;
            }
            Class::Number
        } else if c.is_alphabetic() || c == '_' {
            while i < line.len() {
                let d = line[i..].chars().next().unwrap_or(' ');
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                i += d.len_utf8();
            }
            let word = &line[start..i];
            if KEYWORDS.contains(&word) {
                Class::Keyword
            } else if curate_stdlib::primitives::find(word).is_some() {
                Class::Primitive
            } else {
                Class::Plain
            }
        } else {
            i += c.len_utf8();
            Class::Plain
        };
        match out.last_mut() {
            Some((Class::Plain, text)) if class == Class::Plain => {
                let s: &str = text;
                let base = s.as_ptr() as usize - line.as_ptr() as usize;
                *text = &line[base..i];
            }
            _ => out.push((class, &line[start..i])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_round_trips() {
        let line = "let n = ds.filter(\"label = 'x'\").len(); // 3";
        let parts = classify(line);
        let joined: String = parts.iter().map(|p| p.1).collect();
        assert_eq!(joined, line);
        assert!(parts.contains(&(Class::Keyword, "let")));
        assert!(parts.contains(&(Class::Primitive, "filter")));
        assert!(parts.contains(&(Class::String, "\"label = 'x'\"")));
        assert!(parts.contains(&(Class::Comment, "// 3")));
        assert_eq!(classify(":help filter")[0], (Class::Meta, ":help"));
        for p in curate_stdlib::primitives::ALL {
            let line = format!("ds.{}(x)", p.name);
            assert!(classify(&line).contains(&(Class::Primitive, p.name)), "{} is not highlighted", p.name);
        }
    }
}
