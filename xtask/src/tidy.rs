//! Architecture invariants checked on the source tree (ARCHITECTURE.md,
//! "Invariants"): each crate depends only on the crates its row allows,
//! core crates do no IO and read no clock, every file says what it is for,
//! and no channel is unbounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Our crates and the crates of ours each may depend on (normal
/// dependencies; dev-dependencies are free). Adding an edge here is an
/// architecture change: update ARCHITECTURE.md in the same commit.
const ALLOWED_DEPS: &[(&str, &[&str])] = &[
    ("caravan-model", &[]),
    ("caravan-records", &["caravan-model"]),
    ("caravan-ledger", &["caravan-model"]),
    ("caravan-publish", &["caravan-model", "caravan-records", "caravan-ledger"]),
    ("caravan-store", &["caravan-model", "caravan-records"]),
    ("caravan-catalog", &["caravan-model", "caravan-records", "caravan-store"]),
    (
        "caravan-api",
        &[
            "caravan-model",
            "caravan-records",
            "caravan-ledger",
            "caravan-search",
            "caravan-booking",
            "caravan-accounts",
        ],
    ),
    (
        "caravan-node",
        &[
            "caravan-model",
            "caravan-records",
            "caravan-ledger",
            "caravan-publish",
            "caravan-store",
            "caravan-catalog",
            "caravan-api",
            "caravan-replication",
            "caravan-net",
            "caravan-search",
            "caravan-booking",
            "caravan-accounts",
            "caravan-group",
        ],
    ),
    (
        "caravan",
        &[
            "caravan-model",
            "caravan-records",
            "caravan-ledger",
            "caravan-store",
            "caravan-catalog",
            "caravan-node",
            "caravan-api",
            "caravan-topology",
            "caravan-search",
            "caravan-booking",
            "caravan-accounts",
        ],
    ),
    ("caravan-test-utils", &["caravan-model"]),
    ("caravan-topology", &["caravan-model"]),
    ("caravan-search", &["caravan-model"]),
    ("caravan-accounts", &["caravan-model"]),
    ("caravan-booking", &["caravan-model", "caravan-records", "caravan-ledger"]),
    ("caravan-replication", &["caravan-model", "caravan-records"]),
    ("caravan-net", &["caravan-replication"]),
    ("caravan-group", &["caravan-model", "caravan-ledger"]),
    (
        "caravan-sim",
        &["caravan-model", "caravan-records", "caravan-replication", "caravan-catalog", "caravan-topology"],
    ),
    ("xtask", &[]),
];

/// Pure crates: no IO, no clock, no randomness from the environment.
const CORE_CRATES: &[&str] = &[
    "caravan-model",
    "caravan-records",
    "caravan-ledger",
    "caravan-publish",
    "caravan-topology",
    "caravan-search",
    "caravan-booking",
    "caravan-accounts",
];

/// Dependencies a core crate must not have.
const IO_DEPS: &[&str] = &["tokio", "rusqlite", "axum", "libp2p", "openraft", "hyper", "tower", "tower-http"];

/// Source text a core crate must not contain.
const IO_CALLS: &[&str] = &["Instant::now", "SystemTime::now", "thread_rng", "std::fs", "std::net", "OsRng"];

/// Channel constructors without a bound.
const UNBOUNDED: &[&str] = &["unbounded_channel", "mpsc::channel()", "sync::mpsc::channel"];

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

pub fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED_DEPS.iter().copied().collect();
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .map(|entry| Ok(entry?.path().join("Cargo.toml")))
        .collect::<std::io::Result<_>>()?;
    manifests.push(root.join("xtask/Cargo.toml"));
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest)?;
        let parsed: toml::Table = toml::from_str(&text)?;
        let name = parsed["package"]["name"].as_str().unwrap_or_default().to_owned();
        let deps: Vec<String> = parsed
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let Some(allowed_ours) = allowed.get(name.as_str()) else {
            problems.push(format!("{}: crate {name} is missing from tidy's ALLOWED_DEPS", manifest.display()));
            continue;
        };
        for dep in deps.iter().filter(|d| d.starts_with("caravan-")) {
            if !allowed_ours.contains(&dep.as_str()) {
                problems.push(format!("{name} depends on {dep}, which its row does not allow (ARCHITECTURE.md)"));
            }
        }
        let crate_dir = manifest.parent().expect("manifest in a directory");
        if CORE_CRATES.contains(&name.as_str()) {
            for dep in deps.iter().filter(|d| IO_DEPS.contains(&d.as_str())) {
                problems.push(format!("core crate {name} depends on {dep}: core crates do no IO"));
            }
            for file in rust_files(&crate_dir.join("src"))? {
                let text = std::fs::read_to_string(&file)?;
                for call in IO_CALLS.iter().filter(|call| text.contains(*call)) {
                    problems.push(format!("{}: core code uses {call}; take it as an argument", file.display()));
                }
            }
        }
    }
    for file in rust_files(&root.join("crates"))?.into_iter().chain(rust_files(&root.join("xtask"))?) {
        let text = std::fs::read_to_string(&file)?;
        let first = text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
        if !first.starts_with("//!") {
            problems.push(format!("{}: start the file with a //! doc saying what it is for", file.display()));
        }
        if file.ends_with("tidy.rs") {
            continue;
        }
        for pattern in UNBOUNDED.iter().filter(|p| text.contains(*p)) {
            problems.push(format!("{}: {pattern} is unbounded; give the channel a named bound", file.display()));
        }
    }
    Ok(problems)
}

fn rust_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_tidy() {
        let problems = check(&workspace_root()).unwrap();
        assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
    }

    #[test]
    fn tidy_catches_a_core_crate_reading_the_clock() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("crates/model/src")).unwrap();
        std::fs::create_dir_all(dir.join("xtask/src")).unwrap();
        std::fs::write(dir.join("xtask/Cargo.toml"), "[package]\nname = \"xtask\"\n").unwrap();
        std::fs::write(
            dir.join("crates/model/Cargo.toml"),
            "[package]\nname = \"caravan-model\"\n[dependencies]\ntokio = \"1\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("crates/model/src/lib.rs"), "fn f() { std::time::Instant::now(); }\n").unwrap();
        let problems = check(&dir).unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("caravan-tidy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
