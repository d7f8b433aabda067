//! `caravan bench failover`: one owner run as a replica group of three
//! `caravan node run` processes on loopback. `clients` travellers hold a
//! room back to back over HTTP, each starting at its own member and moving
//! to the next with the same Idempotency-Key when one does not answer, as
//! an agency would. Halfway through, the leader is killed with SIGKILL.
//!
//! - `holds_per_s`, `latency_p50_ms`, `latency_p99_ms`: acknowledged holds
//!   before the kill (each is durable on a majority before it is answered).
//! - `failover_s`: from the kill to the first acknowledgement of a hold
//!   sent after it (a hold the old leader committed may still be answered
//!   by a follower just after the kill: that is no new leader at work).
//! - `acked_lost`: acknowledged holds a survivor does not have, counted
//!   per survivor (goal 0).
//! - `oversold`: rooms held beyond the rooms there are (goal 0).
//! - `catchup_entries_per_s`: the killed member, restarted afterwards,
//!   applies what it missed from the new leader: entries it was behind
//!   when it answered again, over the time until it had them all (no
//!   write load then; compare with `holds_per_s`, about one entry each).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Map, Value};

use super::{quantile, XorShift};
use crate::cli::FailoverBench;
use crate::cluster::{self, Cluster};

const LISTING: &str = "failover-room";
/// A traveller whose hold no member answers for this long gives up on it.
const GIVE_UP: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a restarted member gets to catch up.
const CATCHUP_TIMEOUT: Duration = Duration::from_secs(120);

/// What the travellers saw.
#[derive(Default)]
struct Tally {
    /// Acknowledged holds: id, when it was first sent and when the answer
    /// came.
    acked: Vec<(u64, Instant, Instant)>,
    /// Latency of holds acknowledged before the kill, ms.
    latencies_ms: Vec<f64>,
    refused: u64,
    /// Holds given up on: whether the group took them is unknown.
    unknown: u64,
    first_refusal: Option<String>,
}

pub fn run(args: &FailoverBench) -> anyhow::Result<Map<String, Value>> {
    ensure!(args.seconds >= 2, "--seconds must be at least 2: the leader is killed halfway");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let token = cluster::new_token();
        let client = crate::load::client(Some(&token))?;
        let options = cluster::Options {
            dir: dir.path().to_owned(),
            base_port: args.base_port,
            publish_interval_ms: 250,
            token: token.clone(),
            replicas: 3,
            election_timeout_ms: args.election_timeout_ms,
        };
        let graph = caravan_topology::generate(1, 0, 1)?;
        let mut group = Cluster::up(&graph, &options)?;
        group.wait_ready(&client, &graph, READY_TIMEOUT).await?;
        group.form_groups(&client).await?;
        let urls: Vec<String> = group.members().iter().map(|m| format!("http://{}", m.http)).collect();
        create_rooms(&client, &urls[0], args.rooms, args.nights).await?;
        let term_at_start = term_of(&client, &urls[0]).await?;

        eprintln!(
            "{} travellers hold rooms for {} s; the leader is killed after {} s",
            args.clients,
            args.seconds,
            args.seconds / 2
        );
        let started = Instant::now();
        let end = started + Duration::from_secs(args.seconds);
        let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let mut travellers = tokio::task::JoinSet::new();
        for traveller in 0..args.clients {
            let (client, urls, killed_at) = (client.clone(), urls.clone(), killed_at.clone());
            let nights = args.nights;
            travellers.spawn(async move { hold_rooms(traveller, &client, &urls, nights, end, &killed_at).await });
        }
        tokio::time::sleep_until((started + Duration::from_secs(args.seconds / 2)).into()).await;
        let leader = leader_position(&client, &group).await?;
        let term_before_kill = term_of(&client, &urls[leader]).await?;
        group.kill(leader)?;
        let kill = Instant::now();
        *killed_at.lock().expect("kill lock") = Some(kill);
        eprintln!("killed node {} (the leader)", group.members()[leader].name());

        let mut tally = Tally::default();
        while let Some(joined) = travellers.join_next().await {
            let one = joined.context("a traveller task failed")?;
            tally.acked.extend(one.acked);
            tally.latencies_ms.extend(one.latencies_ms);
            tally.refused += one.refused;
            tally.unknown += one.unknown;
            tally.first_refusal = tally.first_refusal.or(one.first_refusal);
        }
        let survivors: Vec<String> =
            urls.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, url)| url.clone()).collect();
        wait_in_step(&client, &survivors).await?;
        let term_at_end = term_of(&client, &survivors[0]).await?;
        let lost = acked_lost(&client, &survivors, &tally.acked).await?;
        let (held, oversold) = rooms_held(&client, &survivors[0], args.rooms, args.nights).await?;
        group.start(leader)?;
        let catchup = catch_up(&client, &urls[leader], &survivors[0]).await?;
        drop(group);

        let before_kill = tally.acked.iter().filter(|(_, _, at)| *at < kill).count();
        let first_after = tally.acked.iter().filter(|(_, sent, _)| *sent >= kill).map(|(_, _, at)| *at).min();
        let mut latencies = tally.latencies_ms;
        latencies.sort_by(f64::total_cmp);
        let mut result = Map::new();
        result.insert("members".into(), json!(3));
        result.insert("clients".into(), json!(args.clients));
        result.insert("election_timeout_ms".into(), json!(args.election_timeout_ms));
        result.insert("holds_per_s".into(), json!(before_kill as f64 / (kill - started).as_secs_f64()));
        result.insert("latency_p50_ms".into(), json!(quantile(&latencies, 0.50)));
        result.insert("latency_p99_ms".into(), json!(quantile(&latencies, 0.99)));
        result.insert("failover_s".into(), json!(first_after.map(|at| (at - kill).as_secs_f64())));
        // Elections under load alone, and those the failover took (one
        // when the first vote wins): spare margin in the timers shows here.
        result.insert("elections_before_kill".into(), json!(term_before_kill - term_at_start));
        result.insert("elections_after_kill".into(), json!(term_at_end - term_before_kill));
        result.insert("holds_acked".into(), json!(tally.acked.len()));
        result.insert("holds_refused".into(), json!(tally.refused));
        result.insert("holds_unknown".into(), json!(tally.unknown));
        result.insert("rooms_held".into(), json!(held));
        result.insert("acked_lost".into(), json!(lost));
        result.insert("oversold".into(), json!(oversold));
        result.insert("catchup_entries".into(), json!(catchup.entries));
        result.insert("catchup_s".into(), json!(catchup.seconds));
        result.insert("catchup_entries_per_s".into(), json!(catchup.entries as f64 / catchup.seconds.max(1e-3)));
        if let Some(why) = tally.first_refusal {
            result.insert("first_refusal".into(), json!(why));
        }
        Ok(result)
    })
}

fn day(offset: i32) -> String {
    crate::now().date().add_days(offset).to_string()
}

async fn create_rooms(client: &reqwest::Client, url: &str, rooms: u32, nights: i32) -> anyhow::Result<()> {
    let listing = json!({
        "id": LISTING, "title": "Failover Hotel — Double", "currency": "EUR",
        "cancellation": { "free_until_hours": 48, "penalty_nights": 1 },
        "stay": {
            "type": "hotel_room", "address": "1 Rue du Bench", "city": "Lyon", "country": "FR",
            "lat": 45.76, "lon": 4.83, "amenities": [], "max_guests": 2,
            "check_in": "15:00", "check_out": "11:00", "units": rooms
        }
    });
    let created = client.post(format!("{url}/api/v1/listings")).json(&listing).send().await?;
    ensure!(created.status().is_success(), "creating the hotel: {}", created.text().await?);
    let ari = json!({ "from": day(1), "to": day(nights + 1), "available": rooms, "price_minor": 10_000 });
    let set = client.put(format!("{url}/api/v1/listings/{LISTING}/ari")).json(&ari).send().await?;
    ensure!(set.status().is_success(), "setting its availability: {}", set.text().await?);
    Ok(())
}

/// One traveller: holds one room for one night, again and again, until
/// `end`, finishing the hold it started.
async fn hold_rooms(
    traveller: usize,
    client: &reqwest::Client,
    urls: &[String],
    nights: i32,
    end: Instant,
    killed_at: &Mutex<Option<Instant>>,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (traveller as u64 + 1));
    let mut member = traveller % urls.len();
    let mut sequence = 0u64;
    while Instant::now() < end {
        sequence += 1;
        let key = format!("failover-{traveller}-{sequence}");
        let night = 1 + rng.below(nights as u64) as i32;
        let hold = json!({
            "listing": LISTING, "check_in": day(night), "check_out": day(night + 1),
            "units": 1, "guests": 1, "hold_seconds": 3_600
        });
        let started = Instant::now();
        loop {
            let request = client.post(format!("{}/api/v1/holds", urls[member])).header("Idempotency-Key", &key);
            let answer = request.json(&hold).timeout(Duration::from_secs(15)).send().await;
            let retry = match answer {
                Ok(response) if response.status().is_success() => {
                    let body: Value = response.json().await.unwrap_or_default();
                    let Some(id) = body["id"].as_u64() else {
                        tally.first_refusal.get_or_insert(format!("a hold without an id: {body}"));
                        tally.unknown += 1;
                        break;
                    };
                    let now = Instant::now();
                    tally.acked.push((id, started, now));
                    if killed_at.lock().expect("kill lock").is_none() {
                        tally.latencies_ms.push((now - started).as_secs_f64() * 1e3);
                    }
                    break;
                }
                Ok(response) if response.status().is_client_error() && response.status() != 429 => {
                    tally.refused += 1;
                    let why = format!("{}: {}", response.status(), response.text().await.unwrap_or_default());
                    tally.first_refusal.get_or_insert(why);
                    break;
                }
                // Not answered, or unavailable: the same key at the next member.
                Ok(_) | Err(_) => true,
            };
            if retry {
                if started.elapsed() > GIVE_UP {
                    tally.unknown += 1;
                    break;
                }
                member = (member + 1) % urls.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tally
}

/// Where the group's leader is among the cluster's members.
async fn leader_position(client: &reqwest::Client, group: &Cluster) -> anyhow::Result<usize> {
    let url = format!("http://{}/api/v1/group", group.members()[0].http);
    let view: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
    let leader = view["leader"].as_u64().context("the group has no leader")?;
    for (position, member) in group.members().iter().enumerate() {
        if caravan_node::identity(&member.data_dir)?.member_id == leader {
            return Ok(position);
        }
    }
    bail!("leader {leader} is not one of the cluster's nodes")
}

/// The group's term as the member at `url` sees it.
async fn term_of(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let view: Value = client.get(format!("{url}/api/v1/group")).send().await?.error_for_status()?.json().await?;
    view["term"].as_u64().context("the group view has no term")
}

/// How the killed member caught up once restarted.
struct CatchUp {
    /// Entries it applied from the group after it answered again.
    entries: u64,
    /// From its first answer until it had applied all of them.
    seconds: f64,
}

/// Waits for the restarted member at `url` to answer, then until it has
/// applied what the group has (`survivor`'s applied index).
async fn catch_up(client: &reqwest::Client, url: &str, survivor: &str) -> anyhow::Result<CatchUp> {
    let applied = async |url: &str| -> Option<u64> {
        let view: Value = client.get(format!("{url}/api/v1/group")).send().await.ok()?.json().await.ok()?;
        view["applied_index"].as_u64()
    };
    let target = applied(survivor).await.context("a survivor did not answer")?;
    let deadline = Instant::now() + CATCHUP_TIMEOUT;
    let first = loop {
        if let Some(index) = applied(url).await {
            break index;
        }
        ensure!(Instant::now() < deadline, "the restarted member did not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answered = Instant::now();
    while applied(url).await.is_none_or(|index| index < target) {
        ensure!(Instant::now() < deadline, "the restarted member did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(CatchUp { entries: target.saturating_sub(first), seconds: answered.elapsed().as_secs_f64() })
}

/// Waits until the survivors have applied the same log.
async fn wait_in_step(client: &reqwest::Client, urls: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut applied = Vec::new();
        for url in urls {
            let view: Value = client.get(format!("{url}/api/v1/group")).send().await?.json().await?;
            applied.push((view["applied_index"].as_u64(), view["leader"].as_u64()));
        }
        if applied.windows(2).all(|w| w[0] == w[1]) && applied[0].1.is_some() {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the survivors did not catch up: {applied:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many acknowledged holds some survivor does not have.
async fn acked_lost(
    client: &reqwest::Client,
    urls: &[String],
    acked: &[(u64, Instant, Instant)],
) -> anyhow::Result<u64> {
    let mut lost = 0;
    for url in urls {
        let mut checks = tokio::task::JoinSet::new();
        for chunk in acked.chunks(acked.len().div_ceil(16).max(1)) {
            let (client, url, ids) =
                (client.clone(), url.clone(), chunk.iter().map(|(id, _, _)| *id).collect::<Vec<_>>());
            checks.spawn(async move {
                let mut missing = 0u64;
                for id in ids {
                    let answer = client.get(format!("{url}/api/v1/holds/{id}")).send().await;
                    if !answer.is_ok_and(|r| r.status().is_success()) {
                        missing += 1;
                    }
                }
                missing
            });
        }
        while let Some(missing) = checks.join_next().await {
            lost += missing.context("a check task failed")?;
        }
    }
    Ok(lost)
}

/// Rooms held or booked over the nights, and how many beyond the rooms.
async fn rooms_held(client: &reqwest::Client, url: &str, rooms: u32, nights: i32) -> anyhow::Result<(u64, u64)> {
    let path = format!("{url}/api/v1/listings/{LISTING}/ari?from={}&to={}", day(1), day(nights + 1));
    let ari: Value = client.get(path).send().await?.error_for_status()?.json().await?;
    let days = ari["days"].as_array().context("the ARI answer has no days")?;
    let taken = |d: &Value| d["held"].as_u64().unwrap_or(0) + d["booked"].as_u64().unwrap_or(0);
    let held = days.iter().map(taken).sum();
    let oversold = days.iter().map(|d| taken(d).saturating_sub(rooms as u64)).sum();
    Ok((held, oversold))
}
