//! `caravan`: the command-line shell over the node library.
//!
//! Arguments are parsed by clap (`cli`), resolved against the data
//! directory and its config, and handed to library crates. Only this crate
//! (and `xtask`) reads argv and the environment.

mod bench;
mod cli;

use anyhow::Context;
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> anyhow::Result<()> {
    match args.command {
        cli::Command::Init(init) => {
            let done = caravan_node::init(&init.data_dir)
                .with_context(|| format!("initializing {}", init.data_dir.display()))?;
            let verb = if done.created { "created" } else { "already initialized" };
            println!("{}: {verb}", init.data_dir.display());
            println!("origin (public key): {}", done.origin);
            Ok(())
        }
        cli::Command::Node(cli::NodeCommand::Run(run)) => node_run(run),
        cli::Command::Bench(bench) => bench::run(bench),
    }
}

fn node_run(args: cli::NodeRun) -> anyhow::Result<()> {
    let data_dir = args.data_dir;
    let initialized = caravan_node::init(&data_dir).with_context(|| format!("initializing {}", data_dir.display()))?;
    if initialized.created {
        tracing::info!(dir = %data_dir.display(), "created a new node");
    }
    let mut config = caravan_node::Config::load(&data_dir).map_err(anyhow::Error::msg)?;
    if let Some(http) = args.http {
        config.http = http;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(config.http).await.with_context(|| format!("binding {}", config.http))?;
        println!("caravan node: http://{} (data in {})", listener.local_addr()?, data_dir.display());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        caravan_node::run(&data_dir, &config, listener, shutdown).await.context("running the node")
    })
}
