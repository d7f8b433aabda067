//! `caravan`: the command-line shell over the node library.
//!
//! Arguments are parsed by clap (`cli`), resolved against the data
//! directory and its config, and handed to library crates. Only this crate
//! (and `xtask`) reads argv and the environment.

mod bench;
mod cli;
mod cluster;
mod demo;
mod group;
mod load;
mod progress;
mod stop;

use anyhow::Context;
use clap::Parser;

/// What a node logs unless `RUST_LOG` says otherwise: the record store's
/// engine tells of every memtable it writes out at info, which an operator
/// need not read.
const DEFAULT_LOG: &str = "info,fjall=warn,lsm_tree=warn";

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(progress::LogWriter)
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
        cli::Command::Cluster(cli::ClusterCommand::Up(args)) => cluster_up(args),
        cli::Command::Cluster(cli::ClusterCommand::Status(args)) => cluster_status(args),
        cli::Command::Load(args) => load(args),
        cli::Command::Bench(bench) => bench::run(bench),
        cli::Command::User(cli::UserCommand::Add(args)) => user_add(args),
        cli::Command::User(cli::UserCommand::Token(args)) => user_token(args),
        cli::Command::Demo(args) => demo::run(args.http, args.dir),
        cli::Command::Group(command) => group::run(command),
    }
}

/// The wall clock, as the node's types read it.
pub(crate) fn now() -> caravan_model::Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    caravan_model::Timestamp(since_epoch.as_millis() as i64)
}

/// The node's database for an account command; the data directory must exist.
fn accounts_db(data_dir: &std::path::Path) -> anyhow::Result<caravan_store::rusqlite::Connection> {
    anyhow::ensure!(
        data_dir.join(caravan_node::identity::KEY_FILE).exists(),
        "{} is not a node's data directory (run `caravan init` first)",
        data_dir.display()
    );
    Ok(caravan_store::open_writer(&data_dir.join(caravan_store::DB_FILE))?)
}

fn user_add(args: cli::UserAdd) -> anyhow::Result<()> {
    let role = if args.admin { caravan_accounts::Role::Admin } else { caravan_accounts::Role::parse(&args.role)? };
    let conn = accounts_db(&args.data_dir)?;
    let password = match std::env::var("CARAVAN_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            eprint!("password for {}: ", args.email);
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let id = caravan_services::accounts::rules::add_user(&conn, &args.email, &password, role, true, now())?;
    println!("user {id}: {} ({})", args.email.trim().to_lowercase(), role.as_str());
    Ok(())
}

fn user_token(args: cli::UserToken) -> anyhow::Result<()> {
    let conn = accounts_db(&args.data_dir)?;
    let secret = caravan_services::accounts::rules::issue_api_token(&conn, &args.email, &args.name, now())?;
    println!("{}", secret.reveal());
    eprintln!("shown once: keep it; send it as 'Authorization: Bearer <token>'");
    Ok(())
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")
}

/// How long `cluster up` waits for every member to answer and find its peers.
const CLUSTER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn cluster_up(args: cli::ClusterUp) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.graph).with_context(|| format!("reading {}", args.graph.display()))?;
    let graph = caravan_topology::Graph::parse(&text).with_context(|| format!("parsing {}", args.graph.display()))?;
    let token = cluster::new_token();
    let options = cluster::Options {
        dir: args.cluster.dir.clone(),
        base_port: args.cluster.base_port,
        publish_interval_ms: args.cluster.publish_interval_ms,
        token: token.clone(),
        replicas: args.replicas,
        election_timeout_ms: None,
    };
    runtime()?.block_on(async {
        let stop = stop::requested();
        let client = load::client(Some(&token))?;
        let mut running = cluster::Cluster::up(&graph, &options)?;
        let nodes = running.members().len();
        println!("starting {nodes} nodes in {} ...", options.dir.display());
        running.wait_ready(&client, &graph, CLUSTER_READY_TIMEOUT).await?;
        if args.replicas > 1 {
            println!("forming replica groups of {} ...", args.replicas);
            running.form_groups(&client).await?;
        }
        let statuses = cluster::statuses(&client, running.members(), false).await;
        print!("{}", cluster::status_table(running.members(), &statuses));
        println!(
            "all {nodes} nodes ready; `caravan cluster status --dir {}` shows them; Ctrl-C stops them",
            options.dir.display()
        );
        let mut watch = tokio::time::interval(std::time::Duration::from_secs(1));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = watch.tick() => {
                    for (member, how) in running.exited() {
                        eprintln!("node {} exited ({how}); see its node.log", member.name());
                    }
                }
            }
        }
        println!("stopping {nodes} nodes ...");
        running.down()?;
        println!("stopped");
        Ok(())
    })
}

fn cluster_status(args: cli::ClusterStatus) -> anyhow::Result<()> {
    let members = cluster::load_members(&args.dir)?;
    runtime()?.block_on(async {
        let statuses = cluster::statuses(&load::client(None)?, &members, false).await;
        print!("{}", cluster::status_table(&members, &statuses));
        Ok(())
    })
}

fn load(args: cli::LoadArgs) -> anyhow::Result<()> {
    let (nodes, token) = if args.nodes.is_empty() {
        let nodes = cluster::load_members(&args.cluster)?.iter().map(|m| m.http).collect();
        (nodes, args.token.or(cluster::load_token(&args.cluster)?))
    } else {
        (args.nodes, args.token)
    };
    let plan = args.shape.plan(args.duration);
    runtime()?.block_on(async {
        let client = load::client(token.as_deref())?;
        println!("preparing {} listings on each of {} nodes ...", plan.listings_per_node(nodes.len()), nodes.len());
        load::prepare(&client, &nodes, &plan).await?;
        println!("sending {:.0} events/s per node for {} s ...", plan.rate_per_node(nodes.len()), args.duration);
        let report = load::run(&client, &nodes, &plan).await?;
        println!(
            "sent {} events in {:.1} s ({:.0}/s); {} failed",
            report.events_sent, report.seconds, report.events_per_s, report.events_failed
        );
        if let Some(error) = report.first_error {
            println!("first failure: {error}");
        }
        Ok(())
    })
}

fn node_run(args: cli::NodeRun) -> anyhow::Result<()> {
    stop::die_with_parent()?;
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
    runtime()?.block_on(async move {
        let shutdown = stop::requested();
        let listener =
            tokio::net::TcpListener::bind(config.http).await.with_context(|| format!("binding {}", config.http))?;
        println!("caravan node: http://{} (data in {})", listener.local_addr()?, data_dir.display());
        let node = caravan_node::start(&data_dir, &config).await.context("starting the node")?;
        let catching_up = progress::catch_up(node.stats().clone());
        // The bar follows the node for as long as it serves.
        tokio::select! {
            served = caravan_node::serve(node, listener, shutdown) => served.context("running the node"),
            never = catching_up => match never {},
        }
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
