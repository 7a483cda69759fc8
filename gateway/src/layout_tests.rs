//! The crate's layering, checked on its source: no two top-level modules depend on
//! each other (directly or round a longer cycle), and no module below the front ends
//! depends on the HTTP layer. Dependencies are the `crate::<module>` paths written
//! outside comments and test code. Run with `cargo test -p gateway --lib layout`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules allowed to depend on `http`: the console (a second front end, served
/// in the HTTP layer's request context), the bootstrap, the tools above it, and the
/// fuzz targets' entry points (they read bodies as the HTTP layer does).
const ABOVE_HTTP: &[&str] = &["console", "startup", "cli", "demo", "fuzzing"];

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || (path.extension().is_some_and(|e| e == "rs")) {
            out.insert(name);
        }
    }
    for not_a_module in ["lib", "main", "layout_tests"] {
        out.remove(not_a_module);
    }
    out
}

/// The text of a file without its comments and its `#[cfg(test)] mod tests` part.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_test_file(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "tests")
        || rel.file_stem().is_some_and(|s| {
            s == "tests" || s.to_string_lossy().ends_with("_tests") || s == "testing"
        })
}

fn collect(dir: &Path, src: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, src, files);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !is_test_file(path.strip_prefix(src).unwrap())
        {
            files.push(path);
        }
    }
}

/// Module → the modules its code names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules(src);
    let mut files = Vec::new();
    collect(src, src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if !modules.contains(&module) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let named = deps.entry(module.clone()).or_default();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            // `crate::x` and `crate::{x, y::z}`.
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .map(|part| part.trim().split("::").next().unwrap_or_default())
                    .collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                vec![&rest[..end]]
            };
            for name in names {
                if name != module && modules.contains(name) {
                    named.insert(name.to_owned());
                }
            }
        }
    }
    deps
}

/// The modules on a cycle, each cycle once.
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in deps.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for module in deps.keys() {
        let from = reaches(module);
        if !from.contains(module) {
            continue;
        }
        let cycle: BTreeSet<String> = from
            .into_iter()
            .filter(|other| reaches(other).contains(module))
            .collect();
        if !found.contains(&cycle) {
            found.push(cycle);
        }
    }
    found
}

#[test]
fn layout_has_no_module_cycle_and_the_domain_does_not_depend_on_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let deps = dependencies(&src);
    assert!(
        deps.contains_key("lookup") && deps.contains_key("http"),
        "{deps:?}"
    );
    assert!(
        deps["http"].contains("lookup"),
        "the reader missed http → lookup"
    );
    let cycles = cycles(&deps);
    assert!(cycles.is_empty(), "module cycles: {cycles:?}");
    let on_http: Vec<&String> = deps
        .iter()
        .filter(|(m, named)| named.contains("http") && !ABOVE_HTTP.contains(&m.as_str()))
        .map(|(m, _)| m)
        .collect();
    assert!(
        on_http.is_empty(),
        "these modules depend on the HTTP layer: {on_http:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let deps = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(
        cycles(&deps),
        vec![BTreeSet::from(["a".to_owned(), "b".to_owned()])]
    );
}
