//! `caravan bench sync`: a local cluster under `caravan load`, measured
//! from outside the nodes: CPU and peak memory per process from `/proc`,
//! bytes, duplicates and propagation latency from each node's
//! `/api/v1/status`, and convergence by catalog digest.
//!
//! The measured window starts after the warm-up and ends when every node
//! holds the same catalog after the load stops, so records still in flight
//! at the end count too.

use std::time::{Duration, Instant};

use anyhow::Context;
use caravan_api::dto::NodeStatus;
use serde_json::{json, Map, Value};

use super::{proc_stats, quantile, BenchDir};
use crate::cli::{BenchCluster, SyncBench};
use crate::cluster::{self, Cluster, Member};
use crate::load::{self, Plan};

/// How long the cluster gets to converge after the load stops.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// CPU time has a resolution of 10 ms (CLK_TCK 100), so a 5 s sample
/// resolves 0.2 % of a core.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub fn run(args: &SyncBench) -> anyhow::Result<Map<String, Value>> {
    let plan = args.shape.plan(args.warmup + args.duration);
    let publish_interval_ms = args.publish_interval_ms.unwrap_or(plan.mode.publish_interval_ms());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let token = cluster::new_token();
        let client = load::client(Some(&token))?;
        let net = BenchNet::start(&args.cluster, &plan, publish_interval_ms, &token, &client).await?;
        let cluster = &net.cluster;
        let nodes = cluster.http_addresses();

        let sampler = Sampler::start(cluster, Duration::from_secs(args.warmup));
        let loopback_before = proc_stats::loopback_bytes();
        let before = Snapshot::take(&client, cluster.members()).await?;
        eprintln!(
            "load: {:.0} events/s per node for {} s (first {} s unmeasured)",
            plan.rate_per_node(nodes.len()),
            args.warmup + args.duration,
            args.warmup
        );
        let load_report = load::run(&client, &nodes, &plan).await?;
        let load_end = Instant::now();
        let converged = wait_converged(&client, cluster.members(), CONVERGE_TIMEOUT).await?;
        let converge_s = load_end.elapsed().as_secs_f64();
        let after = Snapshot::take(&client, cluster.members()).await?;
        let loopback_bytes = proc_stats::loopback_bytes().zip(loopback_before).map(|(a, b)| a.saturating_sub(b));
        let cpu = sampler.stop().await;
        let rss_mb: Vec<f64> =
            cluster.members().iter().map(|m| proc_stats::peak_rss_mb(m.pid).unwrap_or(0.0)).collect();
        drop(net);

        let mut result = Map::new();
        result.insert("mode".into(), json!(plan.mode));
        result.insert("peers".into(), json!(args.cluster.peers));
        result.insert("degree".into(), json!(args.cluster.degree));
        result.insert("rate_per_node".into(), json!(plan.rate_per_node(nodes.len())));
        result.insert("record_bytes".into(), json!(load::record_size(load::runs_for(plan.record_bytes))));
        result.insert("publish_interval_ms".into(), json!(publish_interval_ms));
        result.insert("events_sent".into(), json!(load_report.events_sent));
        result.insert("events_failed".into(), json!(load_report.events_failed));
        result.extend(summarize(&before, &after, &cpu, &rss_mb, loopback_bytes));
        result.insert("converged".into(), json!(converged.is_some()));
        result.insert("converge_after_load_s".into(), json!(converge_s));
        Ok(result)
    })
}

/// The named figures, from the status before and after the window, CPU
/// samples per node (% of one core) and peak RSS per node.
fn summarize(
    before: &Snapshot,
    after: &Snapshot,
    cpu: &[Vec<f64>],
    rss_mb: &[f64],
    loopback_bytes: Option<u64>,
) -> Map<String, Value> {
    let delta = |field: fn(&NodeStatus) -> u64| -> u64 {
        after.0.iter().zip(&before.0).map(|(a, b)| field(a).saturating_sub(field(b))).sum()
    };
    let records_new = delta(|s| s.records_new);
    let records_received = delta(|s| s.records_received);
    let per_record = |total: u64| if records_new == 0 { 0.0 } else { total as f64 / records_new as f64 };
    let lag = LagDelta::between(before, after);
    let medians: Vec<f64> = cpu.iter().map(|samples| median(samples)).collect();
    let mut all_samples: Vec<f64> = cpu.iter().flatten().copied().collect();
    all_samples.sort_by(f64::total_cmp);
    let nodes: Vec<Value> = (0..after.0.len())
        .map(|i| {
            json!({
                "node": i,
                "cpu_pct_median": medians[i],
                "cpu_pct_max": cpu[i].iter().copied().fold(0.0, f64::max),
                "rss_mb_max": rss_mb[i],
                "records_new": after.0[i].records_new.saturating_sub(before.0[i].records_new),
                "records_published": after.0[i].records_published.saturating_sub(before.0[i].records_published),
            })
        })
        .collect();
    let mut sorted_medians = medians.clone();
    sorted_medians.sort_by(f64::total_cmp);
    let mut out = Map::new();
    out.insert("cpu_pct_median".into(), json!(quantile(&sorted_medians, 0.5)));
    out.insert("cpu_pct_max".into(), json!(all_samples.last().copied().unwrap_or(0.0)));
    out.insert("rss_mb_max".into(), json!(rss_mb.iter().copied().fold(0.0, f64::max)));
    // On the wire, duplicates and every protocol layer included.
    out.insert("bytes_in_per_record".into(), json!(per_record(delta(|s| s.transport_bytes_received))));
    out.insert("payload_bytes_in_per_record".into(), json!(per_record(delta(|s| s.bytes_received))));
    if let Some(bytes) = loopback_bytes {
        out.insert("loopback_bytes_per_record".into(), json!(per_record(bytes)));
    }
    out.insert("duplicates_per_record".into(), json!(per_record(records_received.saturating_sub(records_new))));
    out.insert("latency_p50_ms".into(), json!(lag.quantile_ms(0.5)));
    out.insert("latency_p99_ms".into(), json!(lag.quantile_ms(0.99)));
    out.insert("latency_max_ms".into(), json!(lag.quantile_ms(1.0)));
    out.insert("records_published".into(), json!(delta(|s| s.records_published)));
    out.insert("records_applied".into(), json!(records_new));
    out.insert("nodes".into(), Value::Array(nodes));
    out
}

pub(super) fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// A benchmark's cluster: started, its load listings laid out, converged.
/// The cluster is declared before its directory, so it stops first.
pub struct BenchNet {
    pub cluster: Cluster,
    _dir: BenchDir,
}

impl BenchNet {
    pub async fn start(
        spec: &BenchCluster,
        plan: &Plan,
        publish_interval_ms: u64,
        token: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<BenchNet> {
        let graph = caravan_topology::generate(spec.peers, spec.degree, spec.seed)?;
        let dir = BenchDir::new(spec.dir.as_deref())?;
        let options = cluster::Options {
            dir: dir.path().to_owned(),
            base_port: spec.base_port,
            publish_interval_ms,
            token: token.to_owned(),
            replicas: 1,
            election_timeout_ms: None,
        };
        let cluster = Cluster::up(&graph, &options)?;
        cluster.wait_ready(client, &graph, READY_TIMEOUT).await?;
        let nodes = cluster.http_addresses();
        eprintln!("{} nodes up; preparing {} listings each", nodes.len(), plan.listings_per_node(nodes.len()));
        load::prepare(client, &nodes, plan).await?;
        wait_converged(client, cluster.members(), CONVERGE_TIMEOUT).await?.context("no convergence after preparing")?;
        Ok(BenchNet { cluster, _dir: dir })
    }
}

/// Every member's status, in member order; fails if one does not answer.
pub struct Snapshot(pub Vec<NodeStatus>);

impl Snapshot {
    pub async fn take(client: &reqwest::Client, members: &[Member]) -> anyhow::Result<Snapshot> {
        let statuses = cluster::statuses(client, members, false).await;
        Ok(Snapshot(statuses.into_iter().collect::<anyhow::Result<_>>()?))
    }
}

/// The lag histogram of the window: the nodes' cumulative buckets after,
/// minus before, summed over nodes.
pub(super) struct LagDelta {
    buckets: Vec<(u64, u64)>,
    samples: u64,
}

impl LagDelta {
    pub(super) fn between(before: &Snapshot, after: &Snapshot) -> LagDelta {
        let mut buckets: Vec<(u64, u64)> = after.0[0].replication_lag.buckets.iter().map(|&(b, _)| (b, 0)).collect();
        let mut samples = 0;
        for (a, b) in after.0.iter().zip(&before.0) {
            samples += a.replication_lag.samples.saturating_sub(b.replication_lag.samples);
            for (i, (bound, total)) in buckets.iter_mut().enumerate() {
                let (a_bound, a_total) = a.replication_lag.buckets[i];
                let b_total = b.replication_lag.buckets.get(i).map_or(0, |&(_, t)| t);
                debug_assert_eq!(*bound, a_bound);
                *total += a_total.saturating_sub(b_total);
            }
        }
        LagDelta { buckets, samples }
    }

    /// The upper bound of the bucket holding the `q`-quantile; `u64::MAX`
    /// past the last bucket.
    pub(super) fn quantile_ms(&self, q: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = ((self.samples as f64 * q).ceil() as u64).clamp(1, self.samples);
        self.buckets.iter().find(|&&(_, total)| total >= rank).map_or(u64::MAX, |&(bound, _)| bound)
    }
}

/// Polls until every member reports the same catalog digest; the time it
/// took, or `None` on timeout.
pub async fn wait_converged(
    client: &reqwest::Client,
    members: &[Member],
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    let spinner = crate::progress::waiting("converging");
    loop {
        let statuses = cluster::statuses(client, members, true).await;
        let digests: Vec<Option<String>> =
            statuses.iter().map(|s| s.as_ref().ok().and_then(|s| s.catalog_digest.clone())).collect();
        let held: Vec<u64> = statuses.iter().map(|s| s.as_ref().map_or(0, |s| s.records_held)).collect();
        spinner.set_message(format!("records held {held:?}"));
        if digests.iter().all(|d| d.is_some() && *d == digests[0]) {
            spinner.finish_and_clear();
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() >= timeout {
            spinner.finish_and_clear();
            eprintln!("not converged after {timeout:?}: records held {held:?}");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Samples each member's CPU every second, after a warm-up.
pub(super) struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Vec<f64>>>,
}

impl Sampler {
    pub(super) fn start(cluster: &Cluster, warmup: Duration) -> Sampler {
        Sampler::of(cluster.members().iter().map(|m| m.pid).collect(), warmup)
    }

    /// Samples the processes `pids`, in that order.
    pub(super) fn of(pids: Vec<u32>, warmup: Duration) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let mut samples = vec![Vec::new(); pids.len()];
            let mut last: Vec<Option<f64>> = pids.iter().map(|&pid| proc_stats::cpu_seconds(pid)).collect();
            let mut last_at = Instant::now();
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => return samples,
                    _ = ticks.tick() => {}
                }
                let now = Instant::now();
                let wall = now.duration_since(last_at).as_secs_f64();
                for (i, &pid) in pids.iter().enumerate() {
                    let cpu = proc_stats::cpu_seconds(pid);
                    if let (Some(cpu), Some(before)) = (cpu, last[i]) {
                        samples[i].push((cpu - before) / wall * 100.0);
                    }
                    last[i] = cpu;
                }
                last_at = now;
            }
        });
        Sampler { stop, task }
    }

    pub(super) async fn stop(self) -> Vec<Vec<f64>> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_api::dto::LagView;

    fn status(new: u64, received: u64, bytes: u64, lag: &[(u64, u64)]) -> NodeStatus {
        NodeStatus {
            origin: String::new(),
            peers: 3,
            records_held: 0,
            catalog_listings: 0,
            records_published: 10,
            records_received: received,
            records_new: new,
            records_missing: 0,
            bytes_received: bytes,
            transport_bytes_received: bytes * 2,
            replication_lag: LagView {
                samples: lag.last().map_or(0, |&(_, t)| t),
                buckets: lag.to_vec(),
                ..LagView::default()
            },
            catalog_digest: None,
        }
    }

    #[test]
    fn figures_come_from_the_window_only() {
        let before = Snapshot(vec![status(100, 150, 50_000, &[(100, 90), (500, 100)])]);
        let after = Snapshot(vec![status(300, 450, 150_000, &[(100, 280), (500, 300)])]);
        let cpu = vec![vec![1.0, 3.0, 2.0]];
        let out = summarize(&before, &after, &cpu, &[40.0], None);
        assert_eq!(out["bytes_in_per_record"], json!(1000.0));
        assert_eq!(out["payload_bytes_in_per_record"], json!(500.0));
        assert_eq!(out["duplicates_per_record"], json!(0.5));
        assert_eq!(out["latency_p50_ms"], json!(100));
        assert_eq!(out["latency_p99_ms"], json!(500));
        assert_eq!(out["cpu_pct_median"], json!(2.0));
        assert_eq!(out["cpu_pct_max"], json!(3.0));
        assert_eq!(out["records_published"], json!(0));
    }
}
