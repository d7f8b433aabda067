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
        cli::Command::Topology(args) => topology(args),
        cli::Command::Bench(bench) => bench::run(bench),
    }
}

/// Peers up to which `topology` also reports the diameter (all-pairs BFS).
const DIAMETER_PEERS_MAX: u32 = 5_000;

fn topology(args: cli::TopologyArgs) -> anyhow::Result<()> {
    let graph = caravan_topology::generate(args.peers, args.degree, args.seed)?;
    std::fs::write(&args.out, graph.to_text()).with_context(|| format!("writing {}", args.out.display()))?;
    let degrees = graph.degrees();
    let mean = degrees.iter().map(|&d| d as f64).sum::<f64>() / degrees.len() as f64;
    println!("peers     {}", graph.peers());
    println!("edges     {}", graph.edges().count());
    println!(
        "degree    min {} / mean {mean:.2} / max {}",
        degrees.iter().min().unwrap_or(&0),
        degrees.iter().max().unwrap_or(&0)
    );
    if graph.peers() <= DIAMETER_PEERS_MAX {
        println!("diameter  {}", graph.diameter().expect("generated graphs are connected"));
    }
    println!("seed      {}", args.seed);
    println!("wrote {}", args.out.display());
    Ok(())
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
    config.p2p.listen.extend(args.p2p);
    config.p2p.bootstrap.extend(args.bootstrap);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_writes_a_graph_file_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("graph.txt");
        topology(cli::TopologyArgs { peers: 10, degree: 3, seed: 1, out: out.clone() }).unwrap();
        let graph = caravan_topology::Graph::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(graph, caravan_topology::generate(10, 3, 1).unwrap());
        let refused = topology(cli::TopologyArgs { peers: 3, degree: 3, seed: 1, out });
        assert!(refused.unwrap_err().to_string().contains("needs more than 3 peers"));
    }
}
