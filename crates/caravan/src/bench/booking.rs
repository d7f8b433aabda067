//! Bookings per second across owners, over libp2p on loopback: two owner
//! nodes (a hotel with many rooms, a bus company with many seats) and an
//! agency node, all in this process. `clients` travellers each book a
//! room and a seat as one (a two-part saga: hold both in parallel, confirm
//! both) back to back (`--parts 1`: the room only); every booking is durable at both owners (fsync) and
//! at the agency (its saga state after every step) before it counts.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Map, Value};

use caravan_api::AdminService;
use caravan_booking::agency::{NewBooking, Traveller};
use caravan_booking::Quotas;
use caravan_booking::{HoldSpec, Phase};
use caravan_ledger::{Command, HoldRequest};
use caravan_model::*;
use caravan_node::{Node, NodeOptions};

use super::quantile;
use crate::cli::BookingBench;

const DAYS: i32 = 300;

/// The ledger bench's room type: 10,000 rooms, `room-0`.
fn hotel() -> Listing {
    super::ledger::listing(0)
}

fn paris() -> caravan_model::Zone {
    caravan_model::Zone::named("Europe/Paris").expect("a zone")
}

fn bus() -> Listing {
    let at = |m: u32| Some(StopTime { day_offset: 0, time: TimeOfDay::from_minutes(m).expect("valid") });
    Listing {
        id: ListingId::parse("bench-bus").expect("valid"),
        title: "Bench bus".into(),
        details: ListingDetails::Trip(Trip {
            mode: TripMode::Bus,
            operator: "Bench Lines".into(),
            service_number: "B1".into(),
            stops: vec![
                Stop { code: "AAA".into(), name: String::new(), arrival: None, departure: at(480), zone: paris() },
                Stop { code: "BBB".into(), name: String::new(), arrival: at(600), departure: None, zone: paris() },
            ],
            seats: limits::SEATS_MAX,
            seat_map: Vec::new(),
        }),
        ..hotel()
    }
}

async fn open_owner(
    root: &std::path::Path,
    name: &str,
    listing: Listing,
    bootstrap: Vec<String>,
) -> anyhow::Result<Node> {
    let dir = root.join(name);
    caravan_node::init(&dir)?;
    // The bench measures what an owner can take: no agency quota bounds it.
    let options = NodeOptions { publish_interval_ms: 250, quotas: Quotas::unbounded(), ..NodeOptions::default() };
    let node = Node::open(&dir, options).await?;
    let net = caravan_net_config(bootstrap);
    node.start_network(net).await?;
    let today = node.now().date();
    let id = listing.id.clone();
    let capacity = listing.capacity();
    node.submit(Command::CreateListing(listing)).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let patch = AriPatch { available: Some(capacity), price_minor: Some(10_000), ..AriPatch::default() };
    let command = Command::SetAri { listing: id, from: today.add_days(1), to: today.add_days(1 + DAYS), patch };
    node.submit(command).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(node)
}

fn caravan_net_config(bootstrap: Vec<String>) -> caravan_node::NetConfig {
    caravan_node::NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        discovery: false,
        ..Default::default()
    }
}

pub fn run(args: &BookingBench) -> anyhow::Result<Map<String, Value>> {
    let root = tempfile::tempdir().context("creating a temporary directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let agency_dir = root.path().join("agency");
        caravan_node::init(&agency_dir)?;
        let agency = Node::open(&agency_dir, NodeOptions::default()).await?;
        let address = agency.start_network(caravan_net_config(vec![])).await?.context("the agency listens")?;
        let hotel = open_owner(root.path(), "hotel", hotel(), vec![address.clone()]).await?;
        let bus = open_owner(root.path(), "bus", bus(), vec![address]).await?;
        let (hotel_origin, bus_origin) = (hotel.origin(), bus.origin());
        // The agency learns the owners' contacts by replication.
        let deadline = Instant::now() + Duration::from_secs(60);
        while agency.status(false).await?.catalog_listings < 2 {
            anyhow::ensure!(Instant::now() < deadline, "the agency did not receive the owners' records");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        eprintln!("{} travellers booking a room and a seat for {} s", args.clients, args.seconds);

        let today = agency.now().date();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.seconds);
        let mut clients = tokio::task::JoinSet::new();
        let parts_per_booking = args.parts as usize;
        for client in 0..args.clients {
            let agency = agency.clone();
            clients.spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                let mut n = 0i32;
                while Instant::now() < deadline {
                    let night = today.add_days(1 + (client as i32 * 7 + n) % DAYS);
                    n += 1;
                    let parts = vec![
                        (
                            hotel_origin,
                            HoldSpec {
                                request: HoldRequest::Stay {
                                    listing: ListingId::parse("room-0").expect("valid"),
                                    check_in: night,
                                    check_out: night.add_days(1),
                                    units: 1,
                                    guests: 1,
                                },
                                hold_seconds: 0,
                                expected_total_minor: None,
                                traveller: None,
                            },
                        ),
                        (
                            bus_origin,
                            HoldSpec {
                                request: HoldRequest::Trip {
                                    listing: ListingId::parse("bench-bus").expect("valid"),
                                    departure: night,
                                    seats: 1,
                                    seat_numbers: Vec::new(),
                                },
                                hold_seconds: 0,
                                expected_total_minor: None,
                                traveller: None,
                            },
                        ),
                    ];
                    let parts = parts.into_iter().take(parts_per_booking).collect();
                    let traveller = Traveller {
                        name: format!("Traveller {client}"),
                        email: "bench@example.org".into(),
                        phone: None,
                    };
                    let one = Instant::now();
                    match agency
                        .agency()
                        .create_booking(NewBooking {
                            client_key: None,
                            user: None,
                            traveller,
                            parts,
                            wait_to_confirm: false,
                        })
                        .await
                    {
                        Ok(booking) if booking.saga.phase == Phase::Confirmed => {
                            latencies.push(one.elapsed().as_secs_f64() * 1000.0)
                        }
                        _ => failed += 1,
                    }
                }
                (latencies, failed)
            });
        }
        let mut latencies = Vec::new();
        let mut failed = 0;
        while let Some(joined) = clients.join_next().await {
            let (mut mine, not_confirmed) = joined?;
            latencies.append(&mut mine);
            failed += not_confirmed;
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let mut out = Map::new();
        out.insert("clients".into(), json!(args.clients));
        out.insert("parts".into(), json!(args.parts));
        out.insert("seconds".into(), json!(elapsed));
        out.insert("bookings_confirmed".into(), json!(latencies.len()));
        out.insert("bookings_not_confirmed".into(), json!(failed));
        out.insert("bookings_per_s".into(), json!(latencies.len() as f64 / elapsed));
        out.insert("latency_p50_ms".into(), json!(quantile(&latencies, 0.5)));
        out.insert("latency_p99_ms".into(), json!(quantile(&latencies, 0.99)));
        for node in [agency, hotel, bus] {
            node.shutdown().await;
        }
        Ok(out)
    })
}
