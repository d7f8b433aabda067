//! `caravan demo`: a small travel network on this machine in one command.
//! Two agencies and four providers (hotels, holiday rentals, a bus company,
//! an airline), each its own `caravan node run` process, all connected; the
//! providers' services are created through their nodes' APIs and replicate
//! to the agencies, whose web pages a newcomer opens to search and book.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cluster::{self, Cluster};
use crate::load;

/// Prints a line for the person running the demo. A closed stdout (the
/// terminal or the reading process went away) must not stop the network.
macro_rules! say {
    ($($line:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($line)*);
    }};
}

/// The members, in port order: the first serves the address asked for.
const MEMBERS: [&str; 6] = [
    "Caravan Travel (agency)",
    "Lakeside Trips (agency)",
    "Alpine Hotels",
    "Lake Homes",
    "Rhône Lines (bus)",
    "Skyway (air)",
];
const AGENCIES: usize = 2;
/// Days opened for sale from today.
const SALE_DAYS: i32 = 120;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const CATALOG_TIMEOUT: Duration = Duration::from_secs(90);

pub const TRAVELLER_EMAIL: &str = "traveller@demo.caravan";
pub const PROVIDER_EMAIL: &str = "provider@demo.caravan";
pub const ADMIN_EMAIL: &str = "admin@demo.caravan";
pub const DEMO_PASSWORD: &str = "caravan demo password";

/// A stay: `place` is (city, country, latitude, longitude).
fn stay(id: &str, title: &str, kind: &str, place: (&str, &str, f64, f64), units: u32) -> Value {
    let (city, country, lat, lon) = place;
    json!({
        "id": id, "title": title, "description": "A demo listing.", "currency": "EUR",
        "cancellation": { "free_until_hours": 48, "penalty_nights": 1 },
        "stay": {
            "type": kind, "address": format!("1 Demo Street, {city}"), "city": city, "country": country,
            "lat": lat, "lon": lon, "amenities": ["wifi", "breakfast"], "max_guests": 2,
            "check_in": "15:00", "check_out": "11:00", "time_zone": "Europe/Paris", "units": units
        }
    })
}

/// The time zone of a demo stop: Geneva's, or Paris's for the French ones.
fn zone_of(code: &str) -> &'static str {
    if code == "GVA" {
        "Europe/Zurich"
    } else {
        "Europe/Paris"
    }
}

fn trip(id: &str, mode: &str, operator: &str, stops: [(&str, &str); 2], times: [&str; 2], seats: u32) -> Value {
    json!({
        "id": id, "title": format!("{} → {}", stops[0].1, stops[1].1), "currency": "EUR",
        "cancellation": { "free_until_hours": 24, "penalty_percent": 50 },
        "trip": {
            "mode": mode, "operator": operator, "service_number": id.to_uppercase(), "seats": seats,
            "stops": [
                { "code": stops[0].0, "name": stops[0].1, "departure": times[0], "time_zone": zone_of(stops[0].0) },
                { "code": stops[1].0, "name": stops[1].1, "arrival": times[1], "time_zone": zone_of(stops[1].0) }
            ]
        }
    })
}

/// Each provider's services, with the nightly price or fare in cents.
fn catalog() -> Vec<(usize, Value, i64)> {
    vec![
        (2, stay("lac-double", "Hôtel du Lac — Double room", "hotel_room", ("Annecy", "FR", 45.899, 6.129), 8), 12_000),
        (
            2,
            stay(
                "grand-lyon-double",
                "Grand Hôtel Lyon — Double room",
                "hotel_room",
                ("Lyon", "FR", 45.764, 4.836),
                12,
            ),
            14_000,
        ),
        (
            2,
            stay(
                "bergues-double",
                "Hôtel des Bergues — Double room",
                "hotel_room",
                ("Geneva", "CH", 46.206, 6.146),
                10,
            ),
            21_000,
        ),
        (
            2,
            stay("opera-double", "Hôtel de l'Opéra — Double room", "hotel_room", ("Paris", "FR", 48.871, 2.332), 10),
            19_000,
        ),
        (3, stay("lyon-loft", "Old town loft", "vacation_rental", ("Lyon", "FR", 45.762, 4.827), 1), 9_500),
        (3, stay("annecy-chalet", "Lake view chalet", "vacation_rental", ("Annecy", "FR", 45.87, 6.17), 1), 18_000),
        (4, trip("rl-101", "bus", "Rhône Lines", [("GVA", "Geneva"), ("LYS", "Lyon")], ["08:00", "10:00"], 40), 2_500),
        (4, trip("rl-205", "bus", "Rhône Lines", [("LYS", "Lyon"), ("ANC", "Annecy")], ["11:00", "13:00"], 40), 1_900),
        (
            4,
            trip("rl-310", "bus", "Rhône Lines", [("ANC", "Annecy"), ("GVA", "Geneva")], ["17:00", "18:00"], 40),
            1_200,
        ),
        (5, trip("sk-12", "flight", "Skyway", [("LYS", "Lyon"), ("CDG", "Paris")], ["14:00", "15:10"], 120), 9_000),
        (5, trip("sk-31", "flight", "Skyway", [("CDG", "Paris"), ("GVA", "Geneva")], ["18:00", "19:05"], 120), 11_000),
    ]
}

/// Adds a verified account with the demo password (and, for providers,
/// the services they manage) to a member's database; an existing account
/// is kept.
fn add_login(
    member: &cluster::Member,
    email: &str,
    role: caravan_accounts::Role,
    manages: &[&str],
) -> anyhow::Result<()> {
    let conn = caravan_store::open_writer(&member.data_dir.join(caravan_store::DB_FILE))?;
    let user = match caravan_services::accounts::rules::add_user(&conn, email, DEMO_PASSWORD, role, true, crate::now())
    {
        Ok(user) => user,
        Err(caravan_services::accounts::rules::AccountsError::Exists(_)) => {
            caravan_store::users::by_email(&conn, email)?.context("the account just existed")?.id
        }
        Err(error) => return Err(error.into()),
    };
    for listing in manages {
        caravan_store::users::add_manager(&conn, listing, user)?;
    }
    Ok(())
}

async fn post(client: &reqwest::Client, http: SocketAddr, path: &str, body: &Value) -> anyhow::Result<()> {
    let response = client
        .request(
            if path.ends_with("/ari") { reqwest::Method::PUT } else { reqwest::Method::POST },
            format!("http://{http}{path}"),
        )
        .json(body)
        .send()
        .await?;
    let status = response.status();
    // A demo started again finds its services already there.
    if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
        anyhow::bail!("{path}: {status} {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

pub fn run(http: SocketAddr, dir: std::path::PathBuf) -> anyhow::Result<()> {
    anyhow::ensure!(http.ip().is_loopback(), "the demo runs on loopback; give --http 127.0.0.1:PORT");
    let graph = caravan_topology::generate(MEMBERS.len() as u32, MEMBERS.len() as u32 - 1, 1)?;
    let token = cluster::new_token();
    let options = cluster::Options {
        dir: dir.clone(),
        base_port: http.port(),
        publish_interval_ms: 100,
        token: token.clone(),
        replicas: 1,
        election_timeout_ms: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let stop = crate::stop::requested();
        let client = load::client(Some(&token))?;
        say!("starting {} nodes in {} ...", MEMBERS.len(), dir.display());
        let mut running = Cluster::up(&graph, &options)?;
        running.wait_ready(&client, &graph, READY_TIMEOUT).await?;
        let members = running.members().to_vec();
        let today = crate::now().date();
        let (from, to) = (today, today.add_days(SALE_DAYS));
        for (owner, listing, price_minor) in catalog() {
            let id = listing["id"].as_str().unwrap_or_default().to_owned();
            let units = listing["stay"]["units"].as_u64().or(listing["trip"]["seats"].as_u64()).unwrap_or(1);
            post(&client, members[owner].http, "/api/v1/listings", &listing).await?;
            let ari = json!({ "from": from.to_string(), "to": to.to_string(), "available": units, "price_minor": price_minor });
            post(&client, members[owner].http, &format!("/api/v1/listings/{id}/ari"), &ari).await?;
        }
        for (index, member) in members.iter().enumerate() {
            add_login(member, ADMIN_EMAIL, caravan_accounts::Role::Admin, &[])?;
            if index < AGENCIES {
                add_login(member, TRAVELLER_EMAIL, caravan_accounts::Role::Traveller, &[])?;
            } else {
                let owned: Vec<String> = catalog().into_iter().filter(|(o, _, _)| *o == index).map(|(_, l, _)| l["id"].as_str().unwrap_or_default().to_owned()).collect();
                let owned: Vec<&str> = owned.iter().map(String::as_str).collect();
                add_login(member, PROVIDER_EMAIL, caravan_accounts::Role::Provider, &owned)?;
            }
        }
        let expected = catalog().len() as u64;
        let deadline = std::time::Instant::now() + CATALOG_TIMEOUT;
        loop {
            let statuses = cluster::statuses(&client, &members[..AGENCIES], false).await;
            if statuses.iter().all(|s| s.as_ref().is_ok_and(|s| s.catalog_listings >= expected)) {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "the agencies did not receive the catalog; see the node.log files in {}", dir.display());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        say!();
        for (member, name) in members.iter().zip(MEMBERS) {
            say!("  {name:<26} http://{}/", member.http);
        }
        say!();
        say!("Open http://{}/ to search and book.", members[0].http);
        say!("  traveller login (agencies):  {TRAVELLER_EMAIL} / {DEMO_PASSWORD}");
        say!("  provider login (providers):  {PROVIDER_EMAIL} / {DEMO_PASSWORD}");
        say!("  admin login (every node):    {ADMIN_EMAIL} / {DEMO_PASSWORD}");
        say!("  API token (admin on every node): {token}");
        say!("Try Geneva → Annecy by bus, Geneva → Paris by bus and plane with a night in Paris, or Lyon → Geneva via Paris. Ctrl-C stops the demo.");
        let mut watch = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = watch.tick() => {
                    for (member, how) in running.exited() {
                        eprintln!("{} exited ({how}); see its node.log", MEMBERS[member.index as usize]);
                    }
                }
            }
        }
        say!("stopping ...");
        running.down()?;
        Ok(())
    })
}
