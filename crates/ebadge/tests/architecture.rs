//! docs/architecture.md kept true to the code, in milliseconds and without a broker:
//!
//! - no module of any crate reaches, through its `crate::`, `super::` or `$crate::` paths, back to
//!   itself ("Inside the client"): each layer can be read, and tested, without the ones above it.
//!   The paths are read from the sources, so a new import that closes a cycle fails here, with
//!   the cycle named;
//! - the public API of ebadge-bus listed there is what `lib.rs` makes public (what `cargo doc`'s
//!   front page shows).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' `src` folders.
fn crate_sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&crates)
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`; the crate root (`lib.rs`, `main.rs`) → "".
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments, string literals and `#[cfg(test)]` modules: a test may use
/// anything of its crate, and a doc comment naming a module is no dependency.
fn code_of(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    match out.find("#[cfg(test)]\nmod tests") {
        Some(at) => out[..at].to_owned(),
        None => out,
    }
}

/// Every path that starts at `crate::` or `super::` in `code`, with `use` groups
/// (`crate::{a::X, b::{Y, Z}}`) expanded; relative to the crate root.
fn paths_in(code: &str, module: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start).map(|i| i + from) {
            from = at + start.len();
            if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                let mut here: Vec<String> = module
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                // `super` of `a/b.rs` is `a`; of `a/mod.rs`, the crate root.
                here.pop();
                here
            };
            let mut rest = &code[from..];
            while let Some(tail) = rest.strip_prefix("super::") {
                base.pop();
                rest = tail;
            }
            expand(rest, base, &mut found);
        }
    }
    found
}

/// Adds the paths that `rest` (what follows `prefix::`) names.
fn expand(rest: &str, prefix: Vec<String>, found: &mut Vec<Vec<String>>) {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(group[item_start..i].trim(), prefix.clone(), found);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(group[item_start..i].trim(), prefix.clone(), found);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let mut path = prefix;
    let mut rest = rest.trim_start();
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(tail) if tail.starts_with('{') => {
                expand(tail, path, found);
                return;
            }
            Some(tail) => rest = tail,
            None => break,
        }
    }
    found.push(path);
}

/// The module each crate-relative path lands in: its longest prefix that is a module, or, for
/// an item the crate root re-exports (`crate::Client`), the module it comes from.
fn target(
    path: &[String],
    modules: &BTreeSet<String>,
    root_exports: &BTreeMap<String, String>,
) -> Option<String> {
    if path.len() == 1
        && let Some(module) = root_exports.get(&path[0])
    {
        return Some(module.clone());
    }
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// What the crate root re-exports (`pub use client::{Client, ClientConfig}`), by name → module.
fn root_exports(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(source) = std::fs::read_to_string(src.join(root)) else {
            continue;
        };
        let code = code_of(&source);
        for statement in code.split("use ").skip(1) {
            let statement = statement.split(';').next().unwrap_or_default();
            let mut paths = Vec::new();
            expand(statement.trim(), Vec::new(), &mut paths);
            for path in paths {
                let name = path.last().cloned().unwrap_or_default();
                let module = path[..path.len().saturating_sub(1)].join("::");
                if modules.contains(&module) {
                    exports.insert(name, module);
                }
            }
        }
    }
    exports
}

/// The modules of one crate and what each reaches by its paths (its own submodules and its
/// parents excepted: a folder's `mod.rs` declaring its parts, a part using its folder's items).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let exports = root_exports(src, &modules);
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        if module.is_empty() {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let reached: BTreeSet<String> = paths_in(&code, &module)
            .iter()
            .filter_map(|p| target(p, &modules, &exports))
            .filter(|t| {
                !t.is_empty()
                    && *t != module
                    && !t.starts_with(&format!("{module}::"))
                    && !module.starts_with(&format!("{t}::"))
            })
            .collect();
        edges.insert(module, reached);
    }
    edges
}

/// One cycle through `start`, if there is one: the modules in order, `start` first and last.
fn cycle_through(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in edges.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_reaches_back_to_itself_in_any_crate() {
    let mut cycles = Vec::new();
    let mut modules = 0;
    for src in crate_sources() {
        let edges = graph(&src);
        modules += edges.len();
        let mut reported = BTreeSet::new();
        for module in edges.keys() {
            if reported.contains(module) {
                continue;
            }
            if let Some(cycle) = cycle_through(module, &edges) {
                reported.extend(cycle.iter().cloned());
                let crate_name = src.parent().unwrap().file_name().unwrap().to_string_lossy();
                cycles.push(format!("{crate_name}: {}", cycle.join(" → ")));
            }
        }
    }
    assert!(
        modules > 50,
        "only {modules} modules read: is the path right?"
    );
    assert!(
        cycles.is_empty(),
        "module import cycles:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_reader_finds_paths_in_groups_and_through_super() {
    let code = code_of(
        "use crate::{a::X, b::{c::Y, Z}};\n// crate::comment::Ignored\nfn f() { super::super::d::g(); let s = \"crate::string\"; }\n#[cfg(test)]\nmod tests { use crate::e; }",
    );
    let paths: Vec<String> = paths_in(&code, "p::q::r")
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(paths, ["a::X", "b::c::Y", "b::Z", "p::d::g"]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    edges.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycle_through("a", &edges).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(cycle_through("d", &edges), None);
}

/// What ebadge-bus's `lib.rs` makes public at its root: its public modules (not the hidden
/// ones) and the names of what it re-exports (an alias's, for `pub use x as y`).
fn public_root_of_the_bus() -> std::collections::BTreeSet<String> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ebadge-bus/src/lib.rs");
    let code = code_of(&std::fs::read_to_string(lib).unwrap());
    let mut names = std::collections::BTreeSet::new();
    for statement in code.split(';') {
        if statement.contains("#[doc(hidden)]") {
            continue;
        }
        let item = statement
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("#[") && !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(module) = item.strip_prefix("pub mod ") {
            names.insert(module.trim().to_owned());
        } else if let Some(used) = item.strip_prefix("pub use ") {
            if let Some((_, alias)) = used.split_once(" as ") {
                names.insert(alias.trim().to_owned());
                continue;
            }
            let mut paths = Vec::new();
            expand(used.trim(), Vec::new(), &mut paths);
            names.extend(paths.into_iter().filter_map(|p| p.last().cloned()));
        }
    }
    names
}

/// The first column of the table under "## The public API of ebadge-bus" in the architecture
/// page.
fn public_api_in_the_docs() -> std::collections::BTreeSet<String> {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/architecture.md");
    let page = std::fs::read_to_string(page).unwrap();
    let section = page
        .split("## The public API of ebadge-bus")
        .nth(1)
        .expect("the section is there")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_public_api_of_the_bus_in_the_docs_is_what_lib_rs_makes_public() {
    let code = public_root_of_the_bus();
    let docs = public_api_in_the_docs();
    assert!(code.contains("Client") && code.len() > 10, "{code:?}");
    assert_eq!(
        code,
        docs,
        "public in lib.rs but not in docs/architecture.md: {:?}; in the docs only: {:?}",
        code.difference(&docs).collect::<Vec<_>>(),
        docs.difference(&code).collect::<Vec<_>>()
    );
}
