//! `caravan bench catchup`: one member of a local cluster is stopped while
//! the others publish for `--offline` seconds, then restarted; the figure
//! is the time from its restart until its catalog digest equals the
//! others', which includes its start-up and its reconciliation rounds.
//!
//! `records_missing` is what the returning node stored as new after its
//! restart: exactly the records it had missed (its counters start at zero).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use super::sync::{wait_converged, BenchNet, Snapshot, CONVERGE_TIMEOUT};
use crate::cli::CatchupBench;
use crate::load;

/// The longest the returning node gets to catch up.
const CATCHUP_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(args: &CatchupBench) -> anyhow::Result<Map<String, Value>> {
    if args.cluster.peers < 2 {
        bail!("catch-up needs at least 2 peers");
    }
    let plan = args.shape.plan(args.offline);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let token = crate::cluster::new_token();
        let client = load::client(Some(&token))?;
        let mut net = BenchNet::start(&args.cluster, &plan, plan.mode.publish_interval_ms(), &token, &client).await?;
        let cluster = &mut net.cluster;
        let all = cluster.http_addresses();

        let offline = all.len() - 1;
        eprintln!("stopping node {offline}; the others publish for {} s", args.offline);
        cluster.stop(offline)?;
        let others: Vec<_> = cluster.members()[..offline].to_vec();
        let before = Snapshot::take(&client, &others).await?;
        // The listings were laid out for every node; the others keep that
        // layout (their share of the rate grows, not their listings).
        let layout = load::Plan { listings: Some(plan.listings_per_node(all.len())), ..plan.clone() };
        let load_report = load::run(&client, &all[..offline], &layout).await?;
        wait_converged(&client, &others, CONVERGE_TIMEOUT).await?.context("the others did not converge")?;
        let after = Snapshot::take(&client, &others).await?;
        let published: u64 =
            after.0.iter().zip(&before.0).map(|(a, b)| a.records_published.saturating_sub(b.records_published)).sum();

        eprintln!("restarting node {offline}");
        let restarted = Instant::now();
        cluster.start(offline)?;
        let everyone = cluster.members().to_vec();
        let caught_up = wait_converged(&client, &everyone, CATCHUP_TIMEOUT).await?;
        let catchup_s = restarted.elapsed().as_secs_f64();
        let returning = Snapshot::take(&client, &everyone[offline..]).await?;
        drop(net);

        let mut result = Map::new();
        result.insert("mode".into(), json!(plan.mode));
        result.insert("peers".into(), json!(args.cluster.peers));
        result.insert("offline_s".into(), json!(args.offline));
        result.insert("events_sent".into(), json!(load_report.events_sent));
        result.insert("events_failed".into(), json!(load_report.events_failed));
        if let Some(error) = &load_report.first_error {
            result.insert("first_failure".into(), json!(error));
        }
        result.insert("records_published_offline".into(), json!(published));
        result.insert("records_missing".into(), json!(returning.0[0].records_new));
        result.insert("converged".into(), json!(caught_up.is_some()));
        result.insert("catchup_s".into(), json!(catchup_s));
        Ok(result)
    })
}
