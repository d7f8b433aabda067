//! Durable holds per second through the ledger: a node's group of one.
//!
//! `clients` tasks each submit holds back to back (one night to three, one
//! unit, spread over `listings` listings and 300 days) and wait for the
//! durable answer before the next. Holds last an hour, so none expire
//! during the run. Every hold is committed in the group's Raft log (one
//! fsync per log commit) and applied before it is acknowledged;
//! `fsync_per_s` counts the log's commits, `batch_size` the commands each
//! carried.

use anyhow::Context;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use caravan_ledger::{Command, HoldRequest};
use caravan_model::*;
use caravan_node::{Node, NodeOptions};

use super::{quantile, BenchDir, XorShift};
use crate::cli::LedgerBench;

const HORIZON_DAYS: i32 = 365;

/// A room type with the most units a listing may have.
pub(super) fn listing(idx: u32) -> Listing {
    Listing {
        id: ListingId::parse(&format!("room-{idx}")).expect("valid id"),
        title: format!("Room type {idx}"),
        description: String::new(),
        currency: Currency::parse("EUR").expect("valid"),
        cancellation: CancellationPolicy { free_until_hours: 24, penalty: Penalty::Nights(1) },
        details: ListingDetails::Stay(Stay {
            stay_type: StayType::HotelRoom,
            address: String::new(),
            city: "Benchville".into(),
            country: CountryCode::parse("FR").expect("valid"),
            location: GeoPoint { lat_e7: 0, lon_e7: 0 },
            amenities: vec![],
            max_guests: 2,
            check_in: TimeOfDay::from_minutes(15 * 60).expect("valid"),
            check_out: TimeOfDay::from_minutes(11 * 60).expect("valid"),
            zone: caravan_model::Zone::named("Europe/Paris").expect("a zone"),
            units: limits::UNITS_MAX,
        }),
    }
}

pub fn run(args: &LedgerBench) -> anyhow::Result<Map<String, Value>> {
    let dir = BenchDir::new(args.dir.as_deref())?;
    caravan_node::init(dir.path()).context("initializing the bench node")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let node = Node::open(dir.path(), NodeOptions { publish_interval_ms: 250, ..NodeOptions::default() }).await?;
        setup(&node, args.listings).await?;
        eprintln!("{} listings open; {} clients holding for {} s", args.listings, args.clients, args.seconds);

        let fsyncs_before = node.log_commits();
        let commands_before = node.stats().commands.load(Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.seconds);
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..args.clients {
            let node = node.clone();
            let listings = args.listings as u64;
            clients.spawn(async move { hold_until(node, client as u64, listings, deadline).await });
        }
        let (mut granted, mut refused, mut latencies_ms) = (0u64, 0u64, Vec::new());
        while let Some(result) = clients.join_next().await {
            let (g, r, l) = result?;
            granted += g;
            refused += r;
            latencies_ms.extend(l);
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        let fsyncs = node.log_commits() - fsyncs_before;
        let commands = node.stats().commands.load(Ordering::Relaxed) - commands_before;
        latencies_ms.sort_by(f64::total_cmp);
        node.shutdown().await;
        anyhow::ensure!(
            refused == 0,
            "{refused} holds were refused (the ledger holds at most {} live holds): run for fewer --seconds",
            caravan_ledger::HOLDS_LIVE_MAX
        );

        let mut out = Map::new();
        out.insert("holds_per_s".into(), json!(granted as f64 / elapsed_s));
        out.insert("fsync_per_s".into(), json!(fsyncs as f64 / elapsed_s));
        out.insert("batch_size".into(), json!(commands as f64 / fsyncs.max(1) as f64));
        out.insert("holds_granted".into(), json!(granted));
        out.insert("holds_refused".into(), json!(refused));
        out.insert("latency_p50_ms".into(), json!(quantile(&latencies_ms, 0.5)));
        out.insert("latency_p99_ms".into(), json!(quantile(&latencies_ms, 0.99)));
        out.insert("clients".into(), json!(args.clients));
        out.insert("seconds".into(), json!(elapsed_s));
        Ok(out)
    })
}

async fn setup(node: &Node, listings: u32) -> anyhow::Result<()> {
    let today = node.now().date();
    let mut tasks = tokio::task::JoinSet::new();
    for idx in 0..listings {
        let node = node.clone();
        tasks.spawn(async move {
            node.submit(Command::CreateListing(listing(idx))).await?;
            let patch =
                AriPatch { available: Some(limits::UNITS_MAX), price_minor: Some(12_000), ..AriPatch::default() };
            let command =
                Command::SetAri { listing: listing(idx).id, from: today, to: today.add_days(HORIZON_DAYS), patch };
            node.submit(command).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result?.map_err(|e| anyhow::anyhow!("setting up listings: {e:?}"))?;
    }
    Ok(())
}

async fn hold_until(node: Node, client: u64, listings: u64, deadline: Instant) -> (u64, u64, Vec<f64>) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (client + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let today = node.now().date();
    let (mut granted, mut refused, mut latencies_ms) = (0, 0, Vec::new());
    while Instant::now() < deadline {
        let check_in = today.add_days(1 + rng.below(300) as i32);
        let request = HoldRequest::Stay {
            listing: listing(rng.below(listings) as u32).id,
            check_in,
            check_out: check_in.add_days(1 + rng.below(3) as i32),
            units: 1,
            guests: 1,
        };
        let command = Command::Hold {
            idempotency_key: None,
            request,
            ttl_ms: caravan_ledger::HOLD_TTL_MS_MAX,
            expected_total_minor: None,
        };
        let sent = Instant::now();
        match node.submit(command).await {
            Ok(_) => granted += 1,
            Err(_) => refused += 1,
        }
        latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    (granted, refused, latencies_ms)
}
