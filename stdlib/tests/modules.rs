//! The module graph has no cycle: within every folder of every crate, the modules that use one
//! another form a DAG, so each can be read (and tested) with only what it depends on.
//!
//! An edge runs from a module to every module its code names (`crate::a::b`, `use crate::{a,
//! b::c}`, `super::x`), outside `#[cfg(test)]` code. A use between a module and its own
//! ancestor or descendant is the parent/child relation, not a layer, and is not counted; any
//! other use counts between the two siblings under the nearest common ancestor (so
//! `primitives::influence` using `model::graph` is the edge `primitives -> model`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate rooted at `src`, by path (`["primitives", "influence"]`), with the
/// text of its file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).expect("under src").with_extension("");
                let mut path: Vec<String> = rel.iter().map(|c| c.to_string_lossy().to_string()).collect();
                if matches!(path.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    path.pop();
                }
                let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                // Test code may reach anywhere.
                let code = match text.find("#[cfg(test)]") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.insert(path, code);
            }
        }
    }
    out
}

/// The paths a module's code names: each `crate::` or `super::` path, with brace groups
/// expanded one level per segment (`crate::{a::{b, c}, d}` names a::b, a::c and d).
fn named_paths(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (anchor, base) in [("crate::", Vec::new()), ("super::", me[..me.len().saturating_sub(1)].to_vec())] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let before = rest[..i].chars().last();
            rest = &rest[i + anchor.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `$crate::`, `my_crate::`, the second `super::` of a chain
            }
            expand(rest, base.clone(), &mut out);
        }
    }
    out
}

fn expand(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        // Split the group at its top-level commas.
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let ident: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ident.is_empty() || ident == "self" {
        out.push(prefix);
        return;
    }
    let mut path = prefix;
    if ident == "super" {
        path.pop();
    } else {
        path.push(ident.clone());
    }
    let after = &text[ident.len()..];
    match after.strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

/// The deepest module that `path` names (a path may go on into items: `model::Model`).
fn resolve(path: &[String], mods: &BTreeMap<Vec<String>, String>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| mods.contains_key(p))
}

/// Cycles among siblings: for each folder, the strongly connected groups of its children.
fn cycles(src: &Path) -> Vec<String> {
    let mods = modules(src);
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut why: BTreeMap<(Vec<String>, String, String), String> = BTreeMap::new();
    for (me, code) in &mods {
        for named in named_paths(code, me) {
            let Some(target) = resolve(&named, &mods) else { continue };
            let common = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == me.len() || common == target.len() {
                continue; // an ancestor or a descendant
            }
            let parent = me[..common].to_vec();
            let (from, to) = (me[common].clone(), target[common].clone());
            edges.entry(parent.clone()).or_default().entry(from.clone()).or_default().insert(to.clone());
            why.entry((parent, from, to)).or_insert_with(|| format!("{} names {}", me.join("::"), named.join("::")));
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for group in strongly_connected(graph) {
            let mut lines: Vec<String> = Vec::new();
            for a in &group {
                for b in graph.get(a).into_iter().flatten().filter(|b| group.contains(*b)) {
                    lines.push(format!("    {a} -> {b}: {}", why[&(parent.clone(), a.clone(), b.clone())]));
                }
            }
            let at = if parent.is_empty() { "the crate root".to_string() } else { parent.join("::") };
            found.push(format!("{} in {at}: {}\n{}", src.display(), group.iter().cloned().collect::<Vec<_>>().join(", "), lines.join("\n")));
        }
    }
    found
}

/// Tarjan's algorithm; groups of two or more.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                group.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.out.push(group);
            }
        }
    }
    let mut s = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], on: BTreeSet::new(), out: vec![] };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn crate_src(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut found = Vec::new();
    for src in ["src", "kernels/src", "../engine/src"] {
        found.extend(cycles(&crate_src(src)));
    }
    assert!(found.is_empty(), "modules that use each other (move what both need below them):\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_reads_brace_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;");
    write("a.rs", "use crate::{c, b::{x, y}};");
    write("b/mod.rs", "pub mod inner; fn f() { inner::g(); }");
    write("b/inner.rs", "pub fn g() { super::super::a::h(); crate::a::h() }");
    write("c.rs", "fn f() -> crate::d::T { loop {} }");
    write("d.rs", "// crate::a in a comment still counts: keep comments honest\n#[cfg(test)]\nmod tests { use crate::c; }");
    let found = cycles(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(": a, b, c, d\n") || found[0].contains(": a, b\n"), "{}", found[0]);
    assert!(found[0].contains("b -> a: b::inner names a::h"), "{}", found[0]);
    assert_eq!(named_paths("use crate::{a::{b, c}, d};", &["x".into()]), [vec!["a", "b"], vec!["a", "c"], vec!["d"]]);
}
