//! The catalog's projection of a record, without a database: [`project`]
//! turns one record into the rows it adds, replaces or removes. Pure, so
//! the node's catalog tables and the simulator's catalogs derive from the
//! same code.

use crate::{proto, Origin, Payload, Record, RecordId};
use caravan_model::{AriRun, ListingDetails};
use prost::Message;

/// A catalog row for a listing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListingRow {
    pub origin: Origin,
    pub key: String,
    pub version: u64,
    pub record_id: RecordId,
    /// "stay" or "trip".
    pub kind: &'static str,
    pub title: String,
    pub currency: String,
    pub city: Option<String>,
    pub country: Option<String>,
    pub lat_e7: Option<i32>,
    pub lon_e7: Option<i32>,
    pub max_guests: Option<u32>,
    /// First and last stop of a trip.
    pub from_code: Option<String>,
    pub to_code: Option<String>,
}

/// A catalog row for a listing's availability.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AriRow {
    pub origin: Origin,
    pub key: String,
    pub version: u64,
    pub record_id: RecordId,
    /// First day covered, and the day after the last; `None` when nothing is for sale.
    pub first_day: Option<i32>,
    pub end_day: Option<i32>,
    /// Lowest price of a day that is open and not sold out.
    pub price_min_minor: Option<i64>,
    /// The runs, encoded as an `AriPayload`.
    pub runs: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Projection {
    Listing(ListingRow),
    Ari(AriRow),
    /// An origin's contact: how to reach its nodes.
    Contact {
        origin: Origin,
        version: u64,
        record_id: RecordId,
        /// An encoded `ContactPayload`.
        contact: Vec<u8>,
    },
    /// The key was withdrawn: its rows go.
    Remove {
        origin: Origin,
        key: String,
    },
}

/// The catalog change for a record that is now the newest in its slot.
pub fn project(record: &Record) -> Projection {
    let (origin, key, version, record_id) = (record.origin, record.key.clone(), record.version, record.id());
    match &record.payload {
        Payload::Listing(listing) => {
            let mut row = ListingRow {
                origin,
                key,
                version,
                record_id,
                kind: "stay",
                title: listing.title.clone(),
                currency: listing.currency.as_str().to_owned(),
                city: None,
                country: None,
                lat_e7: None,
                lon_e7: None,
                max_guests: None,
                from_code: None,
                to_code: None,
            };
            match &listing.details {
                ListingDetails::Stay(stay) => {
                    row.city = Some(stay.city.clone());
                    row.country = Some(stay.country.as_str().to_owned());
                    row.lat_e7 = Some(stay.location.lat_e7);
                    row.lon_e7 = Some(stay.location.lon_e7);
                    row.max_guests = Some(stay.max_guests);
                }
                ListingDetails::Trip(trip) => {
                    row.kind = "trip";
                    row.from_code = trip.stops.first().map(|s| s.code.clone());
                    row.to_code = trip.stops.last().map(|s| s.code.clone());
                }
            }
            Projection::Listing(row)
        }
        Payload::Ari(runs) => Projection::Ari(AriRow {
            origin,
            key,
            version,
            record_id,
            first_day: runs.first().map(|r| r.start.days()),
            end_day: runs.last().map(|r| r.end().days()),
            price_min_minor: runs
                .iter()
                .filter(|r| r.day.available > 0 && !r.day.stop_sell)
                .map(|r| r.day.price_minor)
                .min(),
            runs: encode_runs(runs),
        }),
        Payload::Withdrawal => Projection::Remove { origin, key },
        Payload::Contact(_) => Projection::Contact { origin, version, record_id, contact: record.payload.encode() },
    }
}

fn encode_runs(runs: &[AriRun]) -> Vec<u8> {
    // The record's payload already is this encoding; re-encoding from the
    // decoded runs keeps unknown fields out of the catalog.
    Payload::Ari(runs.to_vec()).encode()
}

/// Decodes a catalog row's runs.
pub fn decode_runs(bytes: &[u8]) -> Option<Vec<AriRun>> {
    let msg = proto::AriPayload::decode(bytes).ok()?;
    msg.runs
        .iter()
        .map(|r| {
            Some(AriRun {
                start: caravan_model::Date::from_days(r.start_day),
                days: r.days,
                day: caravan_model::AriDay {
                    available: r.available,
                    price_minor: r.price_minor,
                    min_stay: r.min_stay.try_into().ok()?,
                    max_stay: r.max_stay.try_into().ok()?,
                    closed_to_arrival: r.closed_to_arrival,
                    closed_to_departure: r.closed_to_departure,
                    stop_sell: r.stop_sell,
                },
            })
        })
        .collect()
}
