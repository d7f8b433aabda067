//! Money as integer minor units with an ISO 4217 currency; never a float.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ParseError;

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
///
/// The shape is checked, not membership in the current ISO list: the list
/// changes, and a node must not refuse a record because its table is older.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(text: &str) -> Result<Currency, ParseError> {
        match text.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(ParseError::new("currency", format!("{text:?} is not an ISO 4217 code like EUR"))),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked ASCII at construction")
    }

    /// Digits after the decimal point of the minor unit (ISO 4217 exponent):
    /// 0 for JPY, 3 for KWD, 2 for almost everything else.
    pub fn minor_digits(&self) -> u32 {
        const NONE: [&str; 16] = [
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF",
            "XPF",
        ];
        const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
        match self.as_str() {
            code if NONE.contains(&code) => 0,
            code if THREE.contains(&code) => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 3166-1 alpha-2 country code: two upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub fn parse(text: &str) -> Result<CountryCode, ParseError> {
        match text.as_bytes() {
            &[a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(CountryCode([a, b])),
            _ => Err(ParseError::new("country", format!("{text:?} is not an ISO 3166 code like FR"))),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked ASCII at construction")
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in the currency's minor unit (cents for EUR, yen for JPY).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Money {
        Money { amount_minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// `None` on overflow or when the currencies differ.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money::new(self.amount_minor.checked_add(other.amount_minor)?, self.currency))
    }

    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        Some(Money::new(self.amount_minor.checked_mul(factor)?, self.currency))
    }

    /// `percent` of this amount, rounded down to a whole minor unit.
    pub fn percent(self, percent: u8) -> Money {
        let amount = (self.amount_minor as i128 * percent as i128 / 100) as i64;
        Money::new(amount, self.currency)
    }
}

impl fmt::Display for Money {
    /// `123.45 EUR`, `1200 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        if digits == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        write!(f, "{sign}{}.{:0width$} {}", abs / scale, abs % scale, self.currency, width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(CountryCode::parse("FR").is_ok());
        assert!(CountryCode::parse("fr").is_err());
    }

    #[test]
    fn arithmetic_never_mixes_currencies() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(Money::new(150, eur).checked_add(Money::new(50, eur)), Some(Money::new(200, eur)));
        assert_eq!(Money::new(1, eur).checked_add(Money::new(1, usd)), None);
        assert_eq!(Money::new(i64::MAX, eur).checked_mul(2), None);
        assert_eq!(Money::new(999, eur).percent(50), Money::new(499, eur));
        assert_eq!(Money::new(-1205, eur).to_string(), "-12.05 EUR");
        assert_eq!(Money::new(1200, Currency::parse("JPY").unwrap()).to_string(), "1200 JPY");
        assert_eq!(Money::new(1, Currency::parse("KWD").unwrap()).to_string(), "0.001 KWD");
    }
}
