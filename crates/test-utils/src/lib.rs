//! Fixtures shared by the test suites: valid listings to start from, so each
//! test states only what it changes. A dev-dependency only.

use caravan_model::*;

/// A hotel room type in `city` (in Paris's time zone) with `units` rooms: 2 guests, check-in 15:00,
/// check-out 11:00, free cancellation until 48 hours before, then one night.
pub fn stay(id: &str, city: &str, units: u32) -> Listing {
    Listing {
        id: ListingId::parse(id).expect("fixture ids are valid"),
        title: format!("Double room in {city}"),
        description: String::new(),
        currency: Currency::parse("EUR").expect("valid"),
        cancellation: CancellationPolicy { free_until_hours: 48, penalty: Penalty::Nights(1) },
        details: ListingDetails::Stay(Stay {
            stay_type: StayType::HotelRoom,
            address: "1 Main Street".into(),
            city: city.into(),
            country: CountryCode::parse("FR").expect("valid"),
            location: GeoPoint::from_degrees(45.76, 4.83).expect("valid"),
            amenities: vec!["wifi".into()],
            max_guests: 2,
            check_in: TimeOfDay::parse("15:00").expect("valid"),
            check_out: TimeOfDay::parse("11:00").expect("valid"),
            zone: Zone::named("Europe/Paris").expect("a zone"),
            units,
        }),
    }
}

/// A bus from VIE 08:00 to PRG 12:30 (Central European Time) with one seat per label
/// of `seat_map`.
pub fn bus(id: &str, seat_map: &[&str]) -> Listing {
    let at = |hhmm| Some(StopTime { day_offset: 0, time: TimeOfDay::parse(hhmm).expect("valid") });
    Listing {
        title: "Vienna → Prague".into(),
        details: ListingDetails::Trip(Trip {
            mode: TripMode::Bus,
            operator: "Danube Lines".into(),
            service_number: "DL 12".into(),
            stops: vec![
                Stop {
                    code: "VIE".into(),
                    name: "Vienna".into(),
                    arrival: None,
                    departure: at("08:00"),
                    zone: Zone::named("Europe/Vienna").expect("a zone"),
                },
                Stop {
                    code: "PRG".into(),
                    name: "Prague".into(),
                    arrival: at("12:30"),
                    departure: None,
                    zone: Zone::named("Europe/Prague").expect("a zone"),
                },
            ],
            seats: seat_map.len() as u32,
            seat_map: seat_map.iter().map(|s| s.to_string()).collect(),
        }),
        ..stay(id, "Vienna", 1)
    }
}

/// A loopback port for a server a test starts: below the kernel's
/// ephemeral range (32768 and up on Linux), so no outgoing connection can
/// take it between this choice and the server's bind, as one can a port
/// the kernel handed out for `bind(0)`. Each test process walks its own
/// stretch of ports, skipping any already taken.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 40) as u16 * 300;
    loop {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = FIRST + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
