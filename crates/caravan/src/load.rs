//! `caravan load`: drives ARI changes into running nodes over their HTTP
//! API, as a hotel's property-management system would, so each node signs
//! and publishes records of its own listings.
//!
//! - **seed**: every node publishes `rate` events/s (the proof of concept's
//!   experiment: 1,200/s of ~300 B per host), sent as batches
//!   (`POST /api/v1/ari`) every [`SEED_TICK_MS`]; the node's publishing
//!   points bundle them.
//! - **world**: `rate` events/s in total, split over the nodes as origins,
//!   sent a few at a time every [`WORLD_TICK_MS`]: the world's trickle of
//!   changes, mostly signed one record at a time.
//!
//! Each event changes one day's price of one listing, round-robin over the
//! node's listings, so a node with `rate` listings changes each about once a
//! second and every event becomes its own record version. A listing's ARI
//! is laid out as `runs` one-day runs so its record is about `record_bytes`
//! long; an event's price differs from both neighbours' and so never merges
//! runs, which keeps the size steady.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use caravan_records::proto;
use prost::Message;
use serde_json::{json, Value};

pub const SEED_TICK_MS: u64 = 50;
pub const WORLD_TICK_MS: u64 = 10;
/// Updates per `POST /api/v1/ari` (the API takes up to 1,000).
const BATCH_MAX: usize = 1_000;
/// Listing creations in flight per node while preparing.
const PREPARE_CONCURRENCY: usize = 16;
/// Days before the first ARI day: tomorrow, so the dates stay bookable all day.
const FIRST_DAY: i32 = 1;
const BASE_PRICE_MINOR: i64 = 10_000;
const EVENT_PRICE_MINOR: i64 = 20_000;
const UNITS: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Seed,
    World,
}

impl Mode {
    /// The nodes' publishing interval the mode is meant for: seed nodes
    /// bundle a quarter second of changes; world nodes publish nearly every
    /// change on its own, as the world's many small origins would.
    pub fn publish_interval_ms(self) -> u64 {
        match self {
            Mode::Seed => 250,
            Mode::World => 10,
        }
    }
}

/// What to drive; the same for `caravan load` and the benchmarks.
#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    /// Events per second: per node in seed mode, in total in world mode.
    pub rate: f64,
    /// The signed body size each record should have, about.
    pub record_bytes: usize,
    pub duration: Duration,
    /// Listings per node; `None` picks one per event per second.
    pub listings: Option<u32>,
}

impl Plan {
    /// Events per second each node publishes.
    pub fn rate_per_node(&self, nodes: usize) -> f64 {
        match self.mode {
            Mode::Seed => self.rate,
            Mode::World => self.rate / nodes.max(1) as f64,
        }
    }

    pub fn listings_per_node(&self, nodes: usize) -> u32 {
        self.listings.unwrap_or_else(|| (self.rate_per_node(nodes).ceil() as u32).max(1))
    }

    fn tick(&self) -> Duration {
        Duration::from_millis(match self.mode {
            Mode::Seed => SEED_TICK_MS,
            Mode::World => WORLD_TICK_MS,
        })
    }
}

/// The id of listing `index` of node `node`: readable and stable, so a
/// second run reuses the listings of the first.
pub fn listing_id(node: usize, index: u32) -> String {
    format!("load-{node}-{index}")
}

/// One-day runs a listing's ARI needs for its record to be about
/// `record_bytes` long (at least one).
pub fn runs_for(record_bytes: usize) -> u32 {
    let mut runs = 1;
    while runs < caravan_ledger::PUBLISHED_RUNS_MAX as u32 && record_size(runs + 1) <= record_bytes {
        runs += 1;
    }
    runs
}

/// The encoded size of a load listing's ARI record with `runs` runs, its
/// version and time at realistic magnitudes.
pub fn record_size(runs: u32) -> usize {
    let day = caravan_model::Date::from_days(20_500);
    let runs = (0..runs)
        .map(|r| caravan_model::AriRun {
            start: day.add_days(r as i32),
            days: 1,
            day: caravan_model::AriDay {
                available: UNITS,
                price_minor: EVENT_PRICE_MINOR + 2 * r as i64,
                min_stay: 1,
                ..caravan_model::AriDay::default()
            },
        })
        .collect();
    let record = proto::Record {
        origin: vec![0; 32],
        kind: proto::RecordKind::Ari as i32,
        key: listing_id(9, 9_999),
        version: 1 << 24,
        time_ms: 1_800_000_000_000,
        payload: caravan_records::Payload::Ari(runs).encode(),
    };
    record.encoded_len()
}

/// The change event `n` of a node makes: which listing, which day (offset
/// from [`FIRST_DAY`]) and the new price. Consecutive events walk the
/// listings; each listing's successive events walk its days.
pub fn event(n: u64, listings: u32, runs: u32) -> (u32, u32, i64) {
    let listing = (n % listings as u64) as u32;
    let round = n / listings as u64;
    let day = (round % runs as u64) as u32;
    // Unique per day and alternating per round: never a neighbour's price,
    // never the price the day had before.
    let price = EVENT_PRICE_MINOR + 2 * day as i64 + (round / runs as u64 % 2) as i64;
    (listing, day, price)
}

/// The prices a listing's days start with: alternating, so each day is its
/// own run.
fn base_price(day: u32) -> i64 {
    BASE_PRICE_MINOR + (day % 2) as i64
}

fn listing_json(id: &str, node: usize) -> Value {
    json!({
        "id": id,
        "title": format!("Load test room {id}"),
        "currency": "EUR",
        "cancellation": { "free_until_hours": 24, "penalty_percent": 100 },
        "stay": {
            "type": "hotel_room", "city": format!("Load City {node}"), "country": "FR",
            "lat": 45.0, "lon": 6.0, "max_guests": 2, "check_in": "15:00", "check_out": "11:00", "units": UNITS
        }
    })
}

/// What a load run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub events_sent: u64,
    pub events_failed: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    /// A sample failure, to show the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// An HTTP client for the nodes' APIs, sending `token` (an admin API
/// token every node accepts) with each request.
pub fn client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().context("the token is not a header value")?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(PREPARE_CONCURRENCY)
        .build()
        .context("building the HTTP client")
}

/// Creates each node's load listings (reusing those already there) and
/// lays out their ARI.
pub async fn prepare(client: &reqwest::Client, nodes: &[SocketAddr], plan: &Plan) -> anyhow::Result<()> {
    let listings = plan.listings_per_node(nodes.len());
    let runs = runs_for(plan.record_bytes);
    let bar = crate::progress::counting(u64::from(listings) * nodes.len() as u64, "listings");
    let mut tasks = tokio::task::JoinSet::new();
    for (node, &http) in nodes.iter().enumerate() {
        let (client, bar) = (client.clone(), bar.clone());
        tasks.spawn(async move { prepare_node(&client, http, node, listings, runs, &bar).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a preparing task failed")??;
    }
    bar.finish();
    Ok(())
}

async fn prepare_node(
    client: &reqwest::Client,
    http: SocketAddr,
    node: usize,
    listings: u32,
    runs: u32,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let mut creating = tokio::task::JoinSet::new();
    for index in 0..listings {
        if creating.len() >= PREPARE_CONCURRENCY {
            creating.join_next().await.expect("not empty").context("a create task failed")??;
            bar.inc(1);
        }
        let client = client.clone();
        creating.spawn(async move {
            let id = listing_id(node, index);
            let url = format!("http://{http}/api/v1/listings");
            let response = client.post(url).json(&listing_json(&id, node)).send().await?;
            let status = response.status();
            if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
                bail!("creating {id} at {http}: {status} {}", response.text().await.unwrap_or_default());
            }
            Ok(())
        });
    }
    while let Some(done) = creating.join_next().await {
        done.context("a create task failed")??;
        bar.inc(1);
    }
    // Open every day at the base price, then every other day one higher.
    let mut updates = Vec::new();
    for index in 0..listings {
        let id = listing_id(node, index);
        updates.push(ari_update(&id, 0, runs, Some(UNITS), base_price(0)));
        updates.extend((1..runs).step_by(2).map(|day| ari_update(&id, day, day + 1, None, base_price(day))));
    }
    for chunk in updates.chunks(BATCH_MAX) {
        let failed = post_batch(client, http, chunk).await?;
        if let Some(error) = failed.first() {
            bail!("laying out ARI at {http}: {error}");
        }
    }
    Ok(())
}

fn ari_update(listing: &str, from_day: u32, to_day: u32, available: Option<u32>, price_minor: i64) -> Value {
    let date = |offset: u32| today().add_days(FIRST_DAY + offset as i32).to_string();
    let mut update =
        json!({ "listing": listing, "from": date(from_day), "to": date(to_day), "price_minor": price_minor });
    if let Some(available) = available {
        update["available"] = json!(available);
    }
    update
}

fn today() -> caravan_model::Date {
    crate::now().date()
}

/// Sends one batch; returns the messages of the updates the node refused.
async fn post_batch(client: &reqwest::Client, http: SocketAddr, updates: &[Value]) -> anyhow::Result<Vec<String>> {
    let url = format!("http://{http}/api/v1/ari");
    let response = client.post(url).json(&json!({ "updates": updates })).send().await?;
    let status = response.status();
    let body: Value = response.json().await.with_context(|| format!("reading {http}'s answer ({status})"))?;
    if !status.is_success() {
        bail!("{http} answered {status}: {body}");
    }
    let results = body["results"].as_array().cloned().unwrap_or_default();
    Ok(results
        .iter()
        .filter(|r| r.get("error").is_some())
        .map(|r| format!("{}: {}", r["listing"], r["message"]))
        .collect())
}

/// Runs the plan against every node at once until its duration is over,
/// printing progress to stderr.
pub async fn run(client: &reqwest::Client, nodes: &[SocketAddr], plan: &Plan) -> anyhow::Result<Report> {
    let listings = plan.listings_per_node(nodes.len());
    let runs = runs_for(plan.record_bytes);
    let rate = plan.rate_per_node(nodes.len());
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (node, &http) in nodes.iter().enumerate() {
        let (client, plan, sent) = (client.clone(), plan.clone(), sent.clone());
        tasks.spawn(async move {
            drive_node(&client, http, node, &plan, rate, listings, runs, started, deadline, &sent).await
        });
    }
    let bar = crate::progress::timed(plan.duration, "load");
    let progress = tokio::spawn(show_progress(bar.clone(), sent.clone(), started, plan.duration));
    let mut report = Report::default();
    while let Some(done) = tasks.join_next().await {
        let node = done.context("a load task failed")??;
        report.events_sent += node.events_sent;
        report.events_failed += node.events_failed;
        report.first_error = report.first_error.or(node.first_error);
    }
    progress.abort();
    bar.finish();
    report.seconds = started.elapsed().as_secs_f64();
    report.events_per_s = report.events_sent as f64 / report.seconds.max(f64::EPSILON);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive_node(
    client: &reqwest::Client,
    http: SocketAddr,
    node: usize,
    plan: &Plan,
    rate: f64,
    listings: u32,
    runs: u32,
    started: Instant,
    deadline: Instant,
    sent_total: &std::sync::atomic::AtomicU64,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut next_event = 0u64;
    let mut ticks = tokio::time::interval(plan.tick());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let until = now.min(deadline);
        // Due by the clock, so a slow answer is made up at the next tick.
        let due = (until.duration_since(started).as_secs_f64() * rate) as u64;
        let batch: Vec<Value> = (next_event..due)
            .take(BATCH_MAX)
            .map(|n| {
                let (listing, day, price) = event(n, listings, runs);
                ari_update(&listing_id(node, listing), day, day + 1, None, price)
            })
            .collect();
        if !batch.is_empty() {
            next_event += batch.len() as u64;
            match post_batch(client, http, &batch).await {
                Ok(failed) => {
                    report.events_sent += (batch.len() - failed.len()) as u64;
                    report.events_failed += failed.len() as u64;
                    report.first_error = report.first_error.or(failed.into_iter().next());
                }
                Err(error) => {
                    report.events_failed += batch.len() as u64;
                    report.first_error = report.first_error.or(Some(format!("{error:#}")));
                }
            }
            sent_total.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if now >= deadline && next_event >= due {
            return Ok(report);
        }
    }
}

/// Moves the bar once a second: seconds run, events sent.
async fn show_progress(
    bar: indicatif::ProgressBar,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
    duration: Duration,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        bar.set_position(started.elapsed().min(duration).as_secs());
        bar.set_message(format!("{} events", sent.load(std::sync::atomic::Ordering::Relaxed)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn records_come_out_near_the_asked_size() {
        for bytes in [200, 300, 1_000] {
            let runs = runs_for(bytes);
            assert!(record_size(runs) <= bytes, "{bytes}: {runs} runs make {}", record_size(runs));
            assert!(record_size(runs + 1) > bytes);
        }
        assert_eq!(runs_for(1), 1);
    }

    #[test]
    fn events_walk_listings_and_never_merge_runs() {
        let (listings, runs) = (7, 5);
        // Replay the events on a model of the days' prices.
        let mut prices: BTreeMap<(u32, u32), i64> =
            (0..listings).flat_map(|l| (0..runs).map(move |d| ((l, d), base_price(d)))).collect();
        for n in 0..10_000 {
            let (listing, day, price) = event(n, listings, runs);
            assert_eq!(listing, (n % listings as u64) as u32);
            assert_ne!(prices[&(listing, day)], price, "event {n} changes nothing");
            prices.insert((listing, day), price);
            for d in 1..runs {
                assert_ne!(prices[&(listing, d - 1)], prices[&(listing, d)], "event {n} merged two runs");
            }
        }
    }

    #[test]
    fn world_mode_splits_the_rate_over_the_nodes() {
        let plan = Plan {
            mode: Mode::World,
            rate: 1_200.0,
            record_bytes: 300,
            duration: Duration::from_secs(1),
            listings: None,
        };
        assert_eq!(plan.rate_per_node(10), 120.0);
        assert_eq!(plan.listings_per_node(10), 120);
        let seed = Plan { mode: Mode::Seed, ..plan };
        assert_eq!(seed.rate_per_node(10), 1_200.0);
    }
}
