//! A search result's parts as a link carries them to the booking form, so
//! a booking can start from any page (and from no JavaScript at all).

/// One part of a booking as the pages carry it from a search result to the
/// booking form: `stay~origin~listing~check_in~check_out~units~guests` or
/// `trip~origin~listing~departure~seats`, parts joined by `!` (characters
/// no listing id, date or hex origin contains, and that need no escaping
/// in a URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BookPart {
    Stay {
        origin: caravan_records::Origin,
        listing: String,
        check_in: caravan_model::Date,
        check_out: caravan_model::Date,
        units: u32,
        guests: u32,
    },
    Trip {
        origin: caravan_records::Origin,
        listing: String,
        departure: caravan_model::Date,
        seats: u32,
    },
}

impl BookPart {
    pub(crate) fn encode(&self) -> String {
        match self {
            BookPart::Stay { origin, listing, check_in, check_out, units, guests } => {
                format!("stay~{}~{listing}~{check_in}~{check_out}~{units}~{guests}", origin.to_hex())
            }
            BookPart::Trip { origin, listing, departure, seats } => {
                format!("trip~{}~{listing}~{departure}~{seats}", origin.to_hex())
            }
        }
    }

    pub(crate) fn encode_all(parts: impl Iterator<Item = BookPart>) -> String {
        parts.map(|p| p.encode()).collect::<Vec<_>>().join("!")
    }

    pub(crate) fn decode_all(text: &str) -> Option<Vec<BookPart>> {
        let parts: Option<Vec<BookPart>> = text.split('!').map(BookPart::decode).collect();
        parts.filter(|p| !p.is_empty() && p.len() <= caravan_booking::saga::PARTS_MAX)
    }

    fn decode(text: &str) -> Option<BookPart> {
        let fields: Vec<&str> = text.split('~').collect();
        let origin = caravan_records::Origin::from_hex(fields.get(1)?)?;
        let date = |i: usize| caravan_model::Date::parse(fields.get(i)?).ok();
        let number = |i: usize| fields.get(i)?.parse::<u32>().ok();
        let listing = caravan_model::ListingId::parse(fields.get(2)?).ok()?.to_string();
        match (fields[0], fields.len()) {
            ("stay", 7) => Some(BookPart::Stay {
                origin,
                listing,
                check_in: date(3)?,
                check_out: date(4)?,
                units: number(5)?,
                guests: number(6)?,
            }),
            ("trip", 5) => Some(BookPart::Trip { origin, listing, departure: date(3)?, seats: number(4)? }),
            _ => None,
        }
    }

    pub(crate) fn spec(&self) -> (caravan_records::Origin, caravan_booking::HoldSpec) {
        let listing = caravan_model::ListingId::parse(match self {
            BookPart::Stay { listing, .. } | BookPart::Trip { listing, .. } => listing,
        })
        .expect("checked when decoded");
        let (origin, request) = match self {
            BookPart::Stay { origin, check_in, check_out, units, guests, .. } => (
                *origin,
                caravan_ledger::HoldRequest::Stay {
                    listing,
                    check_in: *check_in,
                    check_out: *check_out,
                    units: *units,
                    guests: *guests,
                },
            ),
            BookPart::Trip { origin, departure, seats, .. } => (
                *origin,
                caravan_ledger::HoldRequest::Trip {
                    listing,
                    departure: *departure,
                    seats: *seats,
                    seat_numbers: Vec::new(),
                },
            ),
        };
        (origin, caravan_booking::HoldSpec { request, hold_seconds: 0, expected_total_minor: None, traveller: None })
    }

    pub(crate) fn describe_all(parts: &[BookPart]) -> String {
        parts.iter().map(BookPart::describe).collect::<Vec<_>>().join("; ")
    }

    fn describe(&self) -> String {
        match self {
            BookPart::Stay { listing, check_in, check_out, units, guests, .. } => {
                format!("{listing}: {units} room(s) for {guests} guest(s), {check_in} to {check_out}")
            }
            BookPart::Trip { listing, departure, seats, .. } => format!("{listing}: {seats} seat(s) on {departure}"),
        }
    }
}
