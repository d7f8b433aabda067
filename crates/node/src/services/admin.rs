//! The admin service: the node's status and metrics, its peers and the
//! origins it holds, and its member of the owner's replica group.

use caravan_api::async_trait;
use caravan_api::dto::{self, rfc3339, EquivocationView, OriginView};
use caravan_api::{AdminService, FaultHooksOff, GroupChangeError, Internal, Metric, SubmitError};
use caravan_ledger::Command;

use crate::Node;

#[async_trait]
impl AdminService for Node {
    async fn status(&self, with_digest: bool) -> Result<dto::NodeStatus, Internal> {
        use std::sync::atomic::Ordering::Relaxed;
        // Counting the store's rows takes seconds at millions of records:
        // the replication core's count, once it has one.
        let counted = *self.inner.stats.records_held.lock().expect("stats lock");
        let records_held = match counted {
            Some(held) => held,
            None => self.read_records(caravan_store::Records::count).await.map_err(super::internal)?,
        };
        let (catalog_listings, catalog_digest) = self.read_catalog(|catalog| {
            (catalog.listing_count() as u64, with_digest.then(|| hex::encode(catalog.digest())))
        });
        let stats = &self.inner.stats;
        let replication = stats.replication.lock().expect("stats lock").clone();
        let lag = &replication.lag;
        Ok(dto::NodeStatus {
            origin: self.inner.origin.to_hex(),
            peers: stats.peers.load(Relaxed),
            records_held,
            catalog_listings,
            records_published: stats.records_published.load(Relaxed),
            records_received: replication.records_in,
            records_new: replication.records_new,
            records_missing: stats.records_missing.load(Relaxed),
            bytes_received: replication.bytes_in,
            transport_bytes_received: self.inner.traffic.bytes_in(),
            replication_lag: dto::LagView {
                samples: lag.count(),
                last_ms: lag.last_ms(),
                p50_ms: lag.quantile_ms(0.5),
                p99_ms: lag.quantile_ms(0.99),
                max_ms: lag.max_ms(),
                buckets: lag.cumulative().collect(),
            },
            catalog_digest,
        })
    }

    fn metrics(&self) -> Vec<Metric> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.inner.stats;
        let replication = stats.replication.lock().expect("stats lock").clone();
        let mut metrics = vec![
            Metric::gauge("caravan_peers", "Connected replication peers.", stats.peers.load(Relaxed) as f64),
            Metric::counter("caravan_envelopes_received_total", "Gossip envelopes received.", replication.envelopes_in),
            Metric::counter("caravan_envelopes_sent_total", "Gossip envelopes published.", replication.envelopes_out),
            Metric::counter(
                "caravan_records_received_total",
                "Records received that verified.",
                replication.records_in,
            ),
            Metric::counter(
                "caravan_records_new_total",
                "Received records that were newest in their slot.",
                replication.records_new,
            ),
            Metric::gauge(
                "caravan_records_missing",
                "Records found missing and not fetched yet (while listing a peer far ahead: what it holds beyond this node).",
                stats.records_missing.load(Relaxed) as f64,
            ),
            Metric::counter(
                "caravan_records_fetched_total",
                "Records received by reconciliation fetches.",
                replication.fetched,
            ),
            Metric::counter(
                "caravan_reconcile_rounds_total",
                "Reconciliation sessions started.",
                replication.reconcile_rounds,
            ),
            Metric::counter(
                "caravan_reconcile_bytes_total",
                "Reconciliation frame bytes in and out.",
                replication.reconcile_bytes,
            ),
            Metric::counter(
                "caravan_reconcile_items_read_total",
                "Items of the reconciliation set read to reconcile and to serve listings: its CPU cost.",
                replication.reconcile_items_read,
            ),
            Metric::counter(
                "caravan_records_listed_total",
                "Record ids peers listed to this node while it was far behind them.",
                replication.listed,
            ),
            Metric::counter(
                "caravan_replication_bytes_received_total",
                "Replication payload bytes received: envelopes, reconciliation frames, fetched records.",
                replication.bytes_in,
            ),
            Metric::counter(
                "caravan_transport_bytes_received_total",
                "Bytes read from peers' TCP connections (encryption, multiplexing and gossip overhead included).",
                self.inner.traffic.bytes_in(),
            ),
            Metric::counter(
                "caravan_transport_bytes_sent_total",
                "Bytes written to peers' TCP connections.",
                self.inner.traffic.bytes_out(),
            ),
            Metric::counter(
                "caravan_envelopes_dropped_total",
                "Gossiped envelopes dropped because the node was behind; reconciliation brings their records.",
                self.inner.traffic.envelopes_dropped(),
            ),
            Metric::histogram(
                "caravan_replication_lag_seconds",
                "From a record's signing at its origin to its storing here, for records new here.",
                replication.lag.cumulative().map(|(bound_ms, total)| (bound_ms as f64 / 1000.0, total)).collect(),
                replication.lag.sum_ms() as f64 / 1000.0,
                replication.lag.count(),
            ),
            Metric::gauge(
                "caravan_replication_lag_last_seconds",
                "The replication lag of the last record new here.",
                replication.lag.last_ms() as f64 / 1000.0,
            ),
            Metric::counter(
                "caravan_replication_actions_dropped_total",
                "Replication actions dropped because the network lagged.",
                stats.actions_dropped.load(Relaxed),
            ),
            Metric::counter(
                "caravan_ledger_commands_total",
                "Ledger commands committed.",
                stats.commands.load(Relaxed),
            ),
            Metric::counter(
                "caravan_ledger_commits_total",
                "Transactions storing what applied commands produced.",
                stats.commits.load(Relaxed),
            ),
            Metric::counter(
                "caravan_group_log_commits_total",
                "Commits of the replica group's log, one fsync each: what commands cost in fsyncs.",
                self.inner.group.log_commits(),
            ),
            Metric::counter(
                "caravan_publishing_points_total",
                "Publishing points committed.",
                stats.publishing_points.load(Relaxed),
            ),
            Metric::counter("caravan_stay_searches_total", "Stay searches answered.", self.inner.stay_searches.load(Relaxed)),
            Metric::counter(
                "caravan_search_stays_read_total",
                "Stays read from the record store to price search candidates.",
                self.inner.shelf.stays_read(),
            ),
        ];
        for (quota, count) in self.inner.booking.quota_refusals() {
            metrics.push(
                Metric::counter(
                    "caravan_quota_refusals_total",
                    "Agencies' booking requests refused for a quota.",
                    count,
                )
                .with_label("quota", quota.as_str()),
            );
        }
        for (reason, count) in replication.rejected {
            metrics.push(
                Metric::counter("caravan_rejected_total", "Records, envelopes and frames refused, by reason.", count)
                    .with_label("reason", reason),
            );
        }
        metrics
    }

    fn peers(&self) -> Vec<dto::PeerView> {
        let links = self.inner.links.snapshot();
        let stats = self.inner.stats.peer_stats.lock().expect("stats lock").clone();
        stats
            .into_iter()
            .map(|(peer, stats)| {
                let link = links.get(&peer);
                dto::PeerView {
                    address: link.map(|l| l.address.clone()).unwrap_or_default(),
                    dialled: link.is_some_and(|l| l.dialled),
                    rtt_ms: link.and_then(|l| l.rtt_ms),
                    connected_at: dto::rfc3339(stats.connected_at),
                    records_in: stats.records_in,
                    records_new: stats.records_new,
                    records_out: stats.records_out,
                    peer_id: peer,
                }
            })
            .collect()
    }

    fn group(&self) -> dto::GroupView {
        let mut view = crate::group::view(self.inner.group.status());
        if let Some(this) = self.inner.contact.lock().expect("contact lock").as_ref() {
            view.addrs = this.addrs.clone();
        }
        let agreed = self.read_ledger(|ledger| ledger.group_timers());
        let running = (view.heartbeat_ms, view.election_timeout_ms);
        let pending = agreed.filter(|a| (a.heartbeat_ms, a.election_timeout_ms) != running);
        view.agreed_heartbeat_ms = pending.map(|t| t.heartbeat_ms);
        view.agreed_election_timeout_ms = pending.map(|t| t.election_timeout_ms);
        view
    }

    async fn set_group_timers(&self, heartbeat_ms: u64, election_timeout_ms: u64) -> Result<(), SubmitError> {
        let timers = caravan_group::Timers { heartbeat_ms, election_timeout_ms };
        timers
            .validate(self.inner.group.append_p99_ms())
            .map_err(|why| SubmitError::Rejected(caravan_ledger::Rejection::InvalidRequest(why)))?;
        let agreed = caravan_ledger::GroupTimers { heartbeat_ms, election_timeout_ms };
        self.submit(Command::SetGroupTimers(agreed)).await.map(|_| ())
    }

    async fn add_group_member(&self, input: dto::GroupMemberInput) -> Result<(), GroupChangeError> {
        if input.member_id == 0 {
            return Err(GroupChangeError::Refused("member id 0 is not a member id".into()));
        }
        let peer = caravan_model::PeerContact { peer_id: input.peer_id, addrs: input.addrs };
        peer.validate().map_err(GroupChangeError::Refused)?;
        let member = caravan_group::Member { peer_id: peer.peer_id, addrs: peer.addrs };
        self.change_group(caravan_group::MembershipChange::Add(input.member_id, member)).await
    }

    async fn remove_group_member(&self, member_id: u64) -> Result<(), GroupChangeError> {
        self.change_group(caravan_group::MembershipChange::Remove(member_id)).await
    }

    async fn invite(&self, ttl_ms: i64) -> Result<dto::InvitationView, GroupChangeError> {
        Node::invite(self, ttl_ms).await
    }

    fn cut_off_group_peers(&self, peers: Vec<String>) -> Result<(), FaultHooksOff> {
        if !self.inner.fault_hooks {
            return Err(FaultHooksOff);
        }
        tracing::warn!(?peers, "fault hook: Raft messages to and from these peers are dropped");
        self.inner.group.cut_off(peers.into_iter().collect());
        Ok(())
    }

    async fn origins(&self, limit: u32) -> Result<(Vec<OriginView>, Vec<EquivocationView>), Internal> {
        let read = move |records: &caravan_store::Records| -> Result<_, caravan_store::StoreError> {
            let origins = records.per_origin(limit)?;
            let frozen = records.frozen_origins()?;
            Ok((
                origins
                    .into_iter()
                    .map(|(origin, records, newest)| OriginView {
                        origin: origin.to_hex(),
                        records,
                        newest: rfc3339(newest),
                    })
                    .collect(),
                frozen
                    .into_iter()
                    .map(|(origin, at)| EquivocationView { origin: origin.to_hex(), detected_at: rfc3339(at) })
                    .collect(),
            ))
        };
        self.read_records(read).await.map_err(super::internal)
    }
}
