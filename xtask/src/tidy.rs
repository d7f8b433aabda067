//! Architecture invariants checked on the source tree (ARCHITECTURE.md,
//! "Invariants"): each crate depends only on the crates its row allows,
//! core crates do no IO and read no clock, the simulator runs on core
//! crates only, only `store` and `group` open database files, only `node`
//! spawns tasks (with a written exception per file), shell crates type
//! their errors, every file says what it is for, and no channel is
//! unbounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Our crates and the crates of ours each may depend on (normal
/// dependencies; dev-dependencies are free). Adding an edge here is an
/// architecture change: update ARCHITECTURE.md in the same commit.
const ALLOWED_DEPS: &[(&str, &[&str])] = &[
    ("caravan-model", &[]),
    ("caravan-records", &["caravan-model"]),
    ("caravan-ledger", &["caravan-model", "caravan-accounts"]),
    ("caravan-publish", &["caravan-model", "caravan-records", "caravan-ledger"]),
    ("caravan-store", &["caravan-model", "caravan-records"]),
    ("caravan-catalog", &["caravan-model", "caravan-records", "caravan-search"]),
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
            "caravan-writer",
            "caravan-services",
        ],
    ),
    (
        "caravan-services",
        &[
            "caravan-model",
            "caravan-records",
            "caravan-ledger",
            "caravan-store",
            "caravan-api",
            "caravan-net",
            "caravan-booking",
            "caravan-accounts",
            "caravan-group",
            "caravan-catalog",
        ],
    ),
    (
        "caravan-writer",
        &[
            "caravan-model",
            "caravan-records",
            "caravan-ledger",
            "caravan-publish",
            "caravan-store",
            "caravan-catalog",
            "caravan-replication",
            "caravan-search",
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
            "caravan-replication",
            "caravan-topology",
            "caravan-search",
            "caravan-booking",
            "caravan-accounts",
            "caravan-services",
        ],
    ),
    ("caravan-test-utils", &["caravan-model"]),
    ("caravan-topology", &["caravan-model"]),
    ("caravan-search", &["caravan-model"]),
    ("caravan-accounts", &["caravan-model"]),
    ("caravan-booking", &["caravan-model", "caravan-records", "caravan-ledger"]),
    ("caravan-replication", &["caravan-model", "caravan-records"]),
    ("caravan-net", &["caravan-replication"]),
    ("caravan-group", &["caravan-model", "caravan-ledger", "caravan-accounts"]),
    (
        "caravan-sim",
        &["caravan-model", "caravan-records", "caravan-replication", "caravan-topology", "caravan-catalog"],
    ),
    ("caravan-store-candidates", &[]),
    ("xtask", &[]),
];

/// Pure crates: no IO, no clock, no randomness from the environment.
const CORE_CRATES: &[&str] = &[
    "caravan-model",
    "caravan-catalog",
    "caravan-records",
    "caravan-ledger",
    "caravan-publish",
    "caravan-topology",
    "caravan-search",
    "caravan-booking",
    "caravan-accounts",
    "caravan-replication",
];

/// Crates whose dependencies among ours must all be core crates: the
/// simulator runs the protocol cores with no IO beneath them.
const ON_CORE_ONLY: &[&str] = &["caravan-sim"];

/// The crates that open database files: `store` for the node's database,
/// `group` for the Raft log (`raft.db`, its own file and writer thread, so
/// the log's fsyncs never wait behind the node's), and the measurement of
/// candidate record stores, which opens each in a directory of its own.
const DATABASE_CRATES: &[&str] = &["caravan-store", "caravan-group", "caravan-store-candidates"];

/// Source text that opens a database file.
const DATABASE_OPENS: &[&str] = &["Connection::open", "open_with_flags"];

/// The crate that spawns tasks and threads: it owns their lifetimes and
/// stops them at shutdown.
const SPAWNING_CRATE: &str = "caravan-node";

/// Files outside `node` that may spawn, each for a reason (a path ending in
/// `/` covers its folder).
const SPAWNING_FILES: &[(&str, &str)] = &[
    ("crates/group/src/runtime.rs", "openraft's runtime: the library spawns its core through it"),
    ("crates/group/src/log_store.rs", "the Raft log's writer thread, its fsyncs apart from the node's"),
    ("crates/caravan/src/bench/", "benchmark drivers stand in for outside clients"),
    ("crates/caravan/src/load.rs", "the load driver stands in for property-management systems"),
    ("crates/caravan/src/cluster.rs", "the cluster driver starts and watches node processes"),
    ("crates/caravan/src/group.rs", "joining runs the node while it asks the group to add it"),
];

/// Source text that starts a task or a thread.
const SPAWNS: &[&str] =
    &["tokio::spawn", "task::spawn", "JoinSet", "spawn_blocking", "thread::spawn", "thread::Builder"];

/// Shell crates: their errors reach people and peers, so each says what
/// failed; an error that is only text cannot be matched to a status code.
const TYPED_ERROR_CRATES: &[&str] = &["caravan-api", "caravan-node", "caravan-net", "caravan-services"];

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
        if ON_CORE_ONLY.contains(&name.as_str()) {
            for dep in deps.iter().filter(|d| d.starts_with("caravan-") && !CORE_CRATES.contains(&d.as_str())) {
                problems.push(format!("{name} depends on {dep}, which is not a core crate"));
            }
        }
        // Tidy's own source names every pattern it looks for.
        let sources = if name == "xtask" { Vec::new() } else { rust_files(&crate_dir.join("src"))? };
        if !DATABASE_CRATES.contains(&name.as_str()) {
            if deps.iter().any(|d| d == "rusqlite") {
                problems.push(format!("{name} depends on rusqlite: only store and group open database files"));
            }
            problems.extend(files_containing(
                &sources,
                DATABASE_OPENS,
                "opens a database file; only store and group do",
            )?);
        }
        if name != SPAWNING_CRATE {
            let unexcused: Vec<PathBuf> = sources
                .iter()
                .filter(|file| {
                    let relative = file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned();
                    !SPAWNING_FILES.iter().any(|(allowed, _)| {
                        relative == *allowed || (allowed.ends_with('/') && relative.starts_with(allowed))
                    })
                })
                .cloned()
                .collect();
            problems.extend(files_containing(&unexcused, SPAWNS, "spawns; only node spawns tasks")?);
        }
        if TYPED_ERROR_CRATES.contains(&name.as_str()) {
            for file in &sources {
                let text = std::fs::read_to_string(file)?;
                for (number, line) in text.lines().enumerate() {
                    if line.contains("Result<") && line.contains(", String>") {
                        let at = format!("{}:{}", file.display(), number + 1);
                        problems.push(format!("{at}: Result<_, String> in a shell crate; give the error a type"));
                    }
                }
            }
        }
        if CORE_CRATES.contains(&name.as_str()) {
            for dep in deps.iter().filter(|d| IO_DEPS.contains(&d.as_str())) {
                problems.push(format!("core crate {name} depends on {dep}: core crates do no IO"));
            }
            for file in &sources {
                let text = std::fs::read_to_string(file)?;
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

/// A problem for each file that contains one of `patterns`.
fn files_containing(files: &[PathBuf], patterns: &[&str], what: &str) -> std::io::Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)?;
        for pattern in patterns.iter().filter(|p| text.contains(*p)) {
            problems.push(format!("{}: {pattern} {what}", file.display()));
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

    /// A workspace of one crate (`name`, with `manifest_tail` appended to
    /// its manifest and `source` as its lib.rs) beside an empty xtask.
    fn one_crate(case: &str, name: &str, manifest_tail: &str, source: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("caravan-tidy-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let folder = name.trim_start_matches("caravan-");
        std::fs::create_dir_all(dir.join(format!("crates/{folder}/src"))).unwrap();
        std::fs::create_dir_all(dir.join("xtask/src")).unwrap();
        std::fs::write(dir.join("xtask/Cargo.toml"), "[package]\nname = \"xtask\"\n").unwrap();
        let manifest = format!("[package]\nname = \"{name}\"\n{manifest_tail}");
        std::fs::write(dir.join(format!("crates/{folder}/Cargo.toml")), manifest).unwrap();
        std::fs::write(dir.join(format!("crates/{folder}/src/lib.rs")), format!("//! A test crate.\n{source}"))
            .unwrap();
        dir
    }

    fn problems_of(dir: &Path) -> Vec<String> {
        let problems = check(dir).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        problems
    }

    #[test]
    fn tidy_catches_the_replication_core_reading_the_clock() {
        let dir = one_crate("replication", "caravan-replication", "", "fn f() { std::time::Instant::now(); }\n");
        let problems = problems_of(&dir);
        assert!(problems.iter().any(|p| p.contains("Instant::now")), "{problems:#?}");
    }

    #[test]
    fn tidy_catches_the_simulator_leaning_on_an_adapter() {
        let deps = "[dependencies]\ncaravan-store = { path = \"../store\" }\n";
        let problems = problems_of(&one_crate("sim", "caravan-sim", deps, ""));
        assert!(problems.iter().any(|p| p.contains("not a core crate")), "{problems:#?}");
    }

    #[test]
    fn tidy_catches_a_database_opened_outside_store() {
        let deps = "[dependencies]\nrusqlite = \"0.41\"\n";
        let source = "fn f() { rusqlite::Connection::open(\"x.db\").unwrap(); }\n";
        let problems = problems_of(&one_crate("db", "caravan-api", deps, source));
        assert!(problems.iter().any(|p| p.contains("depends on rusqlite")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("opens a database file")), "{problems:#?}");
    }

    #[test]
    fn tidy_catches_a_task_spawned_outside_node() {
        let source = "async fn f() { tokio::spawn(async {}); }\n";
        let problems = problems_of(&one_crate("spawn", "caravan-api", "", source));
        assert!(problems.iter().any(|p| p.contains("only node spawns")), "{problems:#?}");
        let in_node = problems_of(&one_crate("spawn-node", "caravan-node", "", source));
        assert!(!in_node.iter().any(|p| p.contains("spawns")), "{in_node:#?}");
    }

    #[test]
    fn tidy_catches_an_untyped_error_in_a_shell_crate() {
        let source = "pub fn f() -> Result<(), String> { Ok(()) }\n";
        let problems = problems_of(&one_crate("errors", "caravan-api", "", source));
        assert!(problems.iter().any(|p| p.contains("Result<_, String>")), "{problems:#?}");
        let in_core = problems_of(&one_crate("errors-core", "caravan-model", "", source));
        assert!(!in_core.iter().any(|p| p.contains("Result<_, String>")), "{in_core:#?}");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("caravan-tidy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
