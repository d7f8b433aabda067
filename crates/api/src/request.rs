//! What many endpoints read from a request the same way: page sizes and
//! idempotency keys.

use axum::http::HeaderMap;
use caravan_ledger::IdempotencyKey;

use crate::ApiError;

/// Bookings or records in one page, when the client does not say.
pub const PAGE_DEFAULT: u32 = 100;
/// The most a client may ask for in one page.
pub const PAGE_MAX: u32 = 5_000;

/// The `Idempotency-Key` header, if the client sent one.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::invalid("Idempotency-Key must be ASCII"))?;
    Ok(Some(IdempotencyKey::parse(text)?))
}
