//! `cargo xtask check-modules`: no two modules of a crate import each other in a circle. Each
//! source file is a module (`src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`); its
//! `crate::`, `super::` and `self::` paths outside its tests are edges to the modules they name.
//! An edge counts between the two siblings under the modules' common ancestor (a module using
//! its own ancestor or descendant is no circle), and a circle among siblings fails the check.
//! Circles between crates Cargo refuses already.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A module's path inside its crate (`["stages", "train"]`; the root is empty).
type ModPath = Vec<String>;

/// The crates whose modules are checked: every folder with a `src/` under `crates/`, plus
/// `xtask/`, `python/` and `tests/`.
pub fn crate_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .with_context(|| format!("reading {}", root.join("crates").display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("src").is_dir())
        .collect();
    dirs.extend(["xtask", "python"].iter().map(|d| root.join(d)).filter(|p| p.join("src").is_dir()));
    dirs.sort();
    Ok(dirs)
}

/// Every circle among sibling modules of the crate at `dir`, each as the modules in order.
pub fn circles(dir: &Path) -> Result<Vec<Vec<String>>> {
    let src = dir.join("src");
    let mut files = Vec::new();
    collect_files(&src, &mut files)?;
    let modules: BTreeMap<ModPath, PathBuf> = files.into_iter().map(|f| (module_path(&src, &f), f)).collect();
    // Edges between siblings, grouped by their parent.
    let mut edges: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for target in references(module, &non_test_code(&text)) {
            let Some(target) = longest_module(&modules, &target) else { continue };
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == target.len() {
                continue; // an ancestor or a descendant, or itself
            }
            edges.entry(module[..common].to_vec()).or_default().entry(module[common].clone()).or_default().insert(target[common].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for cycle in cycles_of(graph) {
            let prefix = if parent.is_empty() { String::new() } else { format!("{}::", parent.join("::")) };
            found.push(cycle.into_iter().map(|m| format!("{prefix}{m}")).collect());
        }
    }
    Ok(found)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/a/b.rs` -> `a::b`; `src/a/mod.rs` -> `a`; `src/lib.rs`, `src/main.rs` -> the root.
fn module_path(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: ModPath = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) || (parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The file's code without its `#[cfg(test)]` items (test modules use their parent's items,
/// which is no circle) and without comment lines.
fn non_test_code(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push(if line.trim_start().starts_with("//") { "" } else { line });
            continue;
        }
        // Skip the item: up to the `;` of a one-line item, or to the brace that closes its block.
        let mut depth = 0i64;
        for item in lines.by_ref() {
            depth += item.matches('{').count() as i64 - item.matches('}').count() as i64;
            if depth <= 0 && (item.contains('}') || item.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out.join("\n")
}

/// The module paths `code` names from `module` (`crate::a::b`, `super::c`, `self::d`, and the
/// items of `crate::{a, b::c}` groups), resolved to absolute paths.
fn references(module: &ModPath, code: &str) -> Vec<ModPath> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for anchor in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(anchor).map(|p| p + from) {
            from = pos + anchor.len();
            // A whole word: not `xmc_crate::` or `myself::`.
            if pos > 0 && (bytes[pos - 1].is_ascii_alphanumeric() || bytes[pos - 1] == b'_') {
                continue;
            }
            let base: ModPath = match anchor {
                "crate::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.clone(),
            };
            let rest = &code[from..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    out.push(base.iter().cloned().chain(segments(item.trim())).collect());
                }
            } else {
                out.push(base.iter().cloned().chain(segments(rest)).collect());
            }
        }
    }
    out
}

/// The leading `a::b::c` identifiers of a path.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split("::") {
        let ident: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if ident.is_empty() || ident.len() != part.len() && !part[ident.len()..].starts_with(|c: char| !c.is_ascii_alphanumeric()) {
            if !ident.is_empty() {
                out.push(ident);
            }
            break;
        }
        out.push(ident);
    }
    out
}

/// The longest prefix of `path` that is a module.
fn longest_module(modules: &BTreeMap<ModPath, PathBuf>, path: &ModPath) -> Option<ModPath> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p))
}

/// The strongly connected components of more than one node (Tarjan's algorithm), each sorted.
fn cycles_of(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The check over the repository at `root`: prints each circle, and fails when there is one.
pub fn check(root: &Path) -> Result<std::process::ExitCode> {
    let mut failed = false;
    for dir in crate_dirs(root)? {
        for circle in circles(&dir)? {
            failed = true;
            println!("{}: modules import each other in a circle: {}", dir.strip_prefix(root).unwrap_or(&dir).display(), circle.join(" <-> "));
        }
    }
    if failed {
        println!("break the circle: move what both need into one of them, or into a module below both");
        return Ok(std::process::ExitCode::FAILURE);
    }
    println!("no module circles in {} crates", crate_dirs(root)?.len());
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join("src").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_circle_between_two_modules_is_found_and_one_way_imports_are_not() {
        let one_way = krate(&[("lib.rs", "pub mod a;\npub mod b;\n"), ("a.rs", "use crate::b::Thing;\n"), ("b.rs", "pub struct Thing;\n")]);
        assert!(circles(one_way.path()).unwrap().is_empty());
        let circle = krate(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::Thing;\n"),
            ("b.rs", "pub struct Thing;\nfn f() { crate::c::g() }\n"),
            ("c.rs", "use crate::{a::X, b};\n"),
        ]);
        assert_eq!(circles(circle.path()).unwrap(), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    }

    #[test]
    fn nested_modules_count_between_siblings_and_tests_and_ancestors_do_not() {
        let nested = krate(&[
            ("lib.rs", "mod runner;\nmod stages;\n"),
            ("runner.rs", "use crate::stages;\n"),
            ("stages/mod.rs", "mod data;\nmod train;\nuse crate::runner::Ctx;\n"),
            ("stages/data.rs", "use super::train::X;\nuse crate::stages::helper;\n"),
            ("stages/train.rs", "#[cfg(test)]\nmod tests {\n    use super::data::Y;\n}\npub struct X;\n#[cfg(test)]\nuse super::data::Z;\n"),
        ]);
        assert_eq!(circles(nested.path()).unwrap(), vec![vec!["runner".to_string(), "stages".into()]]);
        let sub = krate(&[
            ("lib.rs", "mod stages;\n"),
            ("stages/mod.rs", "mod data;\nmod train;\n"),
            ("stages/data.rs", "use super::train::X;\n"),
            ("stages/train.rs", "// use super::data::Y;\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\nfn f() { super::data::g() }\n"),
        ]);
        assert_eq!(circles(sub.path()).unwrap(), vec![vec!["stages::data".to_string(), "stages::train".into()]]);
    }
}
