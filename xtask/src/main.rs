//! Repository chores: `cargo xtask tidy` checks the architecture invariants
//! of ARCHITECTURE.md. The same checks run as tests under `cargo test`.

mod tidy;

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("tidy") => {
            let problems = tidy::check(&tidy::workspace_root())?;
            for problem in &problems {
                eprintln!("{problem}");
            }
            if !problems.is_empty() {
                eprintln!("tidy: {} problem(s)", problems.len());
                std::process::exit(1);
            }
            println!("tidy: ok");
            Ok(())
        }
        _ => anyhow::bail!("usage: cargo xtask tidy"),
    }
}
