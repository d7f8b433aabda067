//! `caravan bench world`: does one node hold, search and keep up with the
//! whole world?
//!
//! 1. A synthetic world ([`generate`]) is signed by its origins and stored
//!    in the first seed node's record store before it starts ([`seed`]);
//!    further seeds get a copy. Each seed also publishes listings of its
//!    own through its ledger, for the load to change.
//! 2. A fresh node bootstraps from the seeds over libp2p on loopback:
//!    reconciliation, then fetches, until its catalog digest equals theirs.
//! 3. 60 s of world load (1,200 changes/s in total) on the seeds' own
//!    listings: the fresh node's CPU and replication lag.
//! 4. 2,000 stay searches on the fresh node's HTTP API, in cities picked
//!    by size, for 1–7 nights in the coming ten months.
//! 5. The fresh node restarts: the time until it answers a search again.
//!
//! Memory figures are read from `/proc`: `rss_mb_max` is the fresh node's
//! peak; `index_bytes_per_listing` is what its resident memory grew by,
//! per listing, from its empty start to after the restart and a search
//! (the catalog, the reconciliation set and the store's caches together).

pub mod generate;
pub mod seed;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caravan_model::rng::SplitMix64;
use serde_json::{json, Map, Value};

use super::sync::{median, wait_converged, LagDelta, Sampler, Snapshot};
use super::{proc_stats, quantile, BenchDir};
use crate::cli::WorldBench;
use crate::cluster::{self, Cluster, Member};
use crate::load::{self, Mode, Plan};
use generate::World;

/// How long nodes get to start (seeds rebuild their catalog from the store).
const START_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How long the fresh node gets to hold the world.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(4 * 3_600);
const POLL: Duration = Duration::from_secs(1);
/// Bytes of a load event's record, as in `bench sync --mode world`.
const LOAD_RECORD_BYTES: usize = 300;

pub fn run(args: &WorldBench) -> anyhow::Result<Map<String, Value>> {
    anyhow::ensure!(args.listings > 0 && args.seeds > 0 && args.searches > 0, "counts must be positive");
    let now = crate::now();
    let world = World::new(args.listings, args.origins, args.seed, now.date());
    let seeds = args.seeds as usize;
    let fresh = seeds;
    let dir = BenchDir::new(args.dir.as_deref())?;
    let token = cluster::new_token();
    let options = cluster::Options {
        dir: dir.path().to_owned(),
        base_port: args.base_port,
        publish_interval_ms: Mode::World.publish_interval_ms(),
        token: token.clone(),
        replicas: 1,
        election_timeout_ms: None,
    };
    let mut cluster = Cluster::prepare(&graph(seeds)?, &options)?;

    eprintln!(
        "world: {} listings of {} origins in {} cities",
        world.listings(),
        world.origin_sizes.len(),
        world.cities.len()
    );
    let seeding = crate::progress::counting(world.listings(), "signing and storing the world");
    let first_store = cluster.members()[0].data_dir.join(caravan_store::RECORDS_DIR);
    let world_records = seed::populate(&world, &first_store, now, &seeding)?;
    seeding.finish_and_clear();
    for member in &cluster.members()[1..seeds] {
        copy_dir(&first_store, &member.data_dir.join(caravan_store::RECORDS_DIR))?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = load::client(Some(&token))?;
        let plan = Plan {
            mode: Mode::World,
            rate: args.rate,
            record_bytes: LOAD_RECORD_BYTES,
            duration: Duration::from_secs(args.load_seconds),
            listings: None,
        };
        for i in 0..seeds {
            cluster.start(i)?;
        }
        let seed_members = cluster.members()[..seeds].to_vec();
        wait_answering(&client, &seed_members, world.listings()).await?;
        let seed_http: Vec<SocketAddr> = seed_members.iter().map(|m| m.http).collect();
        load::prepare(&client, &seed_http, &plan).await?;
        wait_converged(&client, &seed_members, START_TIMEOUT).await?.context("the seeds did not converge")?;
        let held = Snapshot::take(&client, &seed_members).await?.0[0].records_held;

        // Bootstrap.
        let bootstrap_started = Instant::now();
        cluster.start(fresh)?;
        let member = cluster.members()[fresh].clone();
        let pid = member.pid;
        wait_answering(&client, std::slice::from_ref(&member), 0).await?;
        let empty_rss_mb = proc_stats::rss_mb(pid).unwrap_or(0.0);
        follow_bootstrap(&client, &member, held).await?;
        let everyone = cluster.members().to_vec();
        wait_converged(&client, &everyone, BOOTSTRAP_TIMEOUT).await?.context("the fresh node did not converge")?;
        let bootstrap_s = bootstrap_started.elapsed().as_secs_f64();
        let bootstrapped = Snapshot::take(&client, std::slice::from_ref(&member)).await?.0.remove(0);
        let disk_bytes = dir_bytes(&member.data_dir)?;

        // World load.
        let before = Snapshot::take(&client, &everyone).await?;
        let sampler = Sampler::of(vec![pid], Duration::ZERO);
        eprintln!("world load: {} changes/s for {} s", args.rate, args.load_seconds);
        let load_report = load::run(&client, &seed_http, &plan).await?;
        let cpu = sampler.stop().await;
        let converged = wait_converged(&client, &everyone, START_TIMEOUT).await?.is_some();
        let after = Snapshot::take(&client, &everyone).await?;
        let lag = LagDelta::between(&Snapshot(vec![before.0[fresh].clone()]), &Snapshot(vec![after.0[fresh].clone()]));

        // Searches.
        let stays_read_before = counter(&client, member.http, "caravan_search_stays_read_total").await?;
        let searches = search(&client, member.http, &world, args.searches).await?;
        let stays_read = counter(&client, member.http, "caravan_search_stays_read_total").await? - stays_read_before;

        // Restart.
        let rss_mb_max = proc_stats::peak_rss_mb(pid).unwrap_or(0.0);
        cluster.stop(fresh)?;
        let restarted = Instant::now();
        cluster.start(fresh)?;
        let member = cluster.members()[fresh].clone();
        wait_searchable(&client, member.http, &world).await?;
        let restart_to_search_s = restarted.elapsed().as_secs_f64();
        let resident_mb = proc_stats::rss_mb(member.pid).unwrap_or(0.0);
        let seed_rss_mb_max = proc_stats::peak_rss_mb(seed_members[0].pid).unwrap_or(0.0);
        drop(cluster);
        drop(dir);

        let listings = world.listings() as f64;
        let records = bootstrapped.records_new as f64;
        let mut out = Map::new();
        out.insert("listings".into(), json!(world.listings()));
        out.insert("origins".into(), json!(world.origin_sizes.len()));
        out.insert("cities".into(), json!(world.cities.len()));
        out.insert("seeds".into(), json!(seeds));
        out.insert("records".into(), json!(held));
        out.insert("world_records".into(), json!(world_records));
        out.insert("bootstrap_s".into(), json!(bootstrap_s));
        out.insert("bootstrap_records_per_s".into(), json!(records / bootstrap_s));
        out.insert(
            "bootstrap_bytes_per_record".into(),
            json!(bootstrapped.transport_bytes_received as f64 / records.max(1.0)),
        );
        out.insert("rss_mb_max".into(), json!(rss_mb_max.max(resident_mb)));
        out.insert("seed_rss_mb_max".into(), json!(seed_rss_mb_max));
        out.insert(
            "index_bytes_per_listing".into(),
            json!((resident_mb - empty_rss_mb).max(0.0) * 1024.0 * 1024.0 / listings),
        );
        out.insert("disk_bytes_per_listing".into(), json!(disk_bytes as f64 / listings));
        out.insert("cpu_pct_world_load".into(), json!(median(&cpu[0])));
        out.insert("lag_p99_ms".into(), json!(lag.quantile_ms(0.99)));
        out.insert("load_events_sent".into(), json!(load_report.events_sent));
        out.insert("load_events_failed".into(), json!(load_report.events_failed));
        out.insert("stay_search_p50_ms".into(), json!(quantile(&searches.millis, 0.5)));
        out.insert("stay_search_p99_ms".into(), json!(quantile(&searches.millis, 0.99)));
        out.insert("stay_search_offers_mean".into(), json!(searches.offers as f64 / args.searches as f64));
        out.insert("stay_search_stays_read_mean".into(), json!(stays_read / args.searches as f64));
        out.insert("restart_to_search_s".into(), json!(restart_to_search_s));
        out.insert("converged".into(), json!(converged));
        Ok(out)
    })
}

/// Seeds `0..seeds` in a chain, and the fresh node (the last) dialling
/// every seed.
fn graph(seeds: usize) -> anyhow::Result<caravan_topology::Graph> {
    let chain = (1..seeds).map(|i| format!("{} {i}\n", i - 1));
    let fresh = (0..seeds).map(|i| format!("{i} {seeds}\n"));
    Ok(caravan_topology::Graph::parse(&chain.chain(fresh).collect::<String>())?)
}

/// A further seed starts with a copy of the first seed's record store.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.metadata()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target).context("copying the world to a seed")?;
        }
    }
    Ok(())
}

/// Waits until each member answers with at least `listings` listings in
/// its catalog.
async fn wait_answering(client: &reqwest::Client, members: &[Member], listings: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let spinner = crate::progress::waiting("starting");
    loop {
        let statuses = cluster::statuses(client, members, false).await;
        if statuses.iter().all(|s| s.as_ref().is_ok_and(|s| s.catalog_listings >= listings)) {
            spinner.finish_and_clear();
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("nodes not answering after {START_TIMEOUT:?}: {statuses:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Shows the fresh node's progress until it has stored `records` new ones.
async fn follow_bootstrap(client: &reqwest::Client, member: &Member, records: u64) -> anyhow::Result<()> {
    let bar = crate::progress::counting(records, "bootstrapping");
    let started = Instant::now();
    loop {
        let status = Snapshot::take(client, std::slice::from_ref(member)).await?.0.remove(0);
        bar.set_position(status.records_new);
        if status.records_new >= records {
            bar.finish_and_clear();
            return Ok(());
        }
        if started.elapsed() > BOOTSTRAP_TIMEOUT {
            bail!("bootstrap incomplete after {BOOTSTRAP_TIMEOUT:?}: {} of {records} records", status.records_new);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Latencies of stay searches, sorted, in ms, and the offers they found.
struct Searches {
    millis: Vec<f64>,
    offers: u64,
}

/// A stay search in `city` for 1-7 nights in the coming ten months.
fn stay_url(http: SocketAddr, world: &World, city: &str, rng: &mut SplitMix64) -> String {
    let check_in = world.today.add_days(1 + rng.below(300) as i32);
    let check_out = check_in.add_days(1 + rng.below(7) as i32);
    let date = |d: caravan_model::Date| {
        let (y, m, d) = d.ymd();
        format!("{y:04}-{m:02}-{d:02}")
    };
    format!(
        "http://{http}/api/v1/search/stays?city={city}&check_in={}&check_out={}&guests=2",
        date(check_in),
        date(check_out)
    )
}

async fn search(client: &reqwest::Client, http: SocketAddr, world: &World, count: u32) -> anyhow::Result<Searches> {
    let mut rng = SplitMix64::new(world.seed ^ 0x5EA2C4);
    let bar = crate::progress::counting(count as u64, "stay searches");
    let mut millis = Vec::with_capacity(count as usize);
    let mut offers = 0;
    for _ in 0..count {
        let city = &world.pick_city(&mut rng).name;
        let url = stay_url(http, world, city, &mut rng);
        let started = Instant::now();
        let answer: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
        millis.push(started.elapsed().as_secs_f64() * 1_000.0);
        offers += answer["offers"].as_array().map_or(0, Vec::len) as u64;
        bar.inc(1);
    }
    bar.finish_and_clear();
    millis.sort_by(f64::total_cmp);
    Ok(Searches { millis, offers })
}

/// The value of the unlabelled counter `name` in the node's `/metrics`.
async fn counter(client: &reqwest::Client, http: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let text = client.get(format!("http://{http}/metrics")).send().await?.error_for_status()?.text().await?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

/// Waits until the node finds offers in the world's biggest city.
async fn wait_searchable(client: &reqwest::Client, http: SocketAddr, world: &World) -> anyhow::Result<()> {
    let started = Instant::now();
    let url = stay_url(http, world, &world.cities[0].name, &mut SplitMix64::new(1));
    loop {
        if let Ok(response) = client.get(&url).timeout(Duration::from_secs(5)).send().await {
            if let Ok(answer) = response.json::<Value>().await {
                if answer["offers"].as_array().is_some_and(|offers| !offers.is_empty()) {
                    return Ok(());
                }
            }
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("the restarted node found no offers after {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bytes of the files under `dir`, logs aside.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if entry.file_name() != "node.log" {
            total += meta.len();
        }
    }
    Ok(total)
}
