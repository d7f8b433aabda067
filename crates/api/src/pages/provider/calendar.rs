//! The calendar editor: availability, price and restrictions over a range
//! of dates; fields left empty stay as they are.

use super::*;

#[derive(Debug, Deserialize)]
pub(crate) struct AriForm {
    csrf: String,
    listing: String,
    from: String,
    to: String,
    /// Each field below left empty (or "keep") leaves the days' value as is.
    #[serde(default)]
    available: String,
    /// In major units ("120.50").
    #[serde(default)]
    price: String,
    #[serde(default)]
    min_stay: String,
    #[serde(default)]
    max_stay: String,
    /// `keep`, `yes` or `no`.
    #[serde(default)]
    closed_to_arrival: String,
    #[serde(default)]
    closed_to_departure: String,
    #[serde(default)]
    stop_sell: String,
}

/// A price in major units as minor units, for a currency with two decimals.
fn minor_units(price: &str) -> Option<i64> {
    let (whole, cents) = price.trim().split_once('.').unwrap_or((price.trim(), "0"));
    let cents = format!("{cents:0<2}");
    if cents.len() > 2 || whole.starts_with('-') {
        return None;
    }
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents.parse::<i64>().ok()?)
}

fn optional<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>, FormError> {
    match text.trim() {
        "" => Ok(None),
        text => number(field, text).map(Some),
    }
}

fn switch(field: &str, text: &str) -> Result<Option<bool>, FormError> {
    match text {
        "" | "keep" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        other => Err(FormError(format!("{field}: keep, yes or no (not {other:?})"))),
    }
}

impl AriForm {
    /// The change the form asks for, or what is wrong with it.
    fn change(&self) -> Result<(Date, Date, AriPatch), FormError> {
        let from = Date::parse(&self.from).map_err(|_| "give the first day")?;
        let to = Date::parse(&self.to).map_err(|_| "give the day after the last")?;
        let price_minor = match self.price.trim() {
            "" => None,
            price => Some(minor_units(price).ok_or("a price such as 120 or 120.50")?),
        };
        let patch = AriPatch {
            available: optional("available", &self.available)?,
            price_minor,
            min_stay: optional("minimum stay", &self.min_stay)?,
            max_stay: optional("maximum stay", &self.max_stay)?,
            closed_to_arrival: switch("closed to arrival", &self.closed_to_arrival)?,
            closed_to_departure: switch("closed to departure", &self.closed_to_departure)?,
            stop_sell: switch("stop sell", &self.stop_sell)?,
        };
        if patch == AriPatch::default() {
            return Err("nothing to change: fill in at least one field".into());
        }
        Ok((from, to, patch))
    }
}

pub(crate) async fn provider_ari(
    State(app): State<AppState>,
    SignedInForm(SignedIn { principal, .. }, form): SignedInForm<AriForm>,
) -> Response {
    let service = match Service::of(&app, &principal, &form.listing).await {
        Ok(service) => service,
        Err(response) => return response,
    };
    let listing = service.id.clone();
    let (from, to, patch) = match form.change() {
        Ok(change) => change,
        Err(FormError(message)) => return service.not_done(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", &message),
    };
    match app.ledger.submit(Command::SetAri { listing, from, to, patch }).await {
        Ok(_) => service.done(Done::Ari),
        Err(error) => service.refused("Not saved", error),
    }
}

session_forms!(AriForm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ari_form_changes_only_what_is_filled_in() {
        let form = |price: &str, stop_sell: &str| AriForm {
            csrf: String::new(),
            listing: "x".into(),
            from: "2030-01-01".into(),
            to: "2030-01-08".into(),
            available: String::new(),
            price: price.into(),
            min_stay: "2".into(),
            max_stay: String::new(),
            closed_to_arrival: "keep".into(),
            closed_to_departure: String::new(),
            stop_sell: stop_sell.into(),
        };
        let (_, _, patch) = form("99.5", "no").change().unwrap();
        assert_eq!(
            patch,
            AriPatch { price_minor: Some(9_950), min_stay: Some(2), stop_sell: Some(false), ..AriPatch::default() }
        );
        assert!(form("-1", "").change().is_err(), "no negative prices");
        assert!(form("", "maybe").change().unwrap_err().0.contains("stop sell"));
    }

    #[test]
    fn prices_in_major_units() {
        assert_eq!(minor_units("120"), Some(12_000));
        assert_eq!(minor_units("120.5"), Some(12_050));
        assert_eq!(minor_units("0.05"), Some(5));
        assert_eq!(minor_units("1.234"), None);
        assert_eq!(minor_units("abc"), None);
    }
}
