//! What many endpoints read from a request the same way: page sizes,
//! idempotency keys and path ids.

use axum::http::HeaderMap;
use caravan_ledger::IdempotencyKey;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{KnownFormat, Required, SchemaFormat};
use utoipa::IntoParams;

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

/// The `Idempotency-Key` header as the OpenAPI document states it.
#[derive(Debug)]
pub(crate) struct IdempotencyKeyHeader;

impl IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(IdempotencyKey::BYTES_MAX))
            .pattern(Some("^[!-~]+$"));
        let header = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("A retry with the same key gets the first answer instead of acting twice."))
            .schema(Some(text));
        vec![header.build()]
    }
}

/// A listing's id in the path: a name.
#[derive(Debug)]
pub(crate) struct ListingIdPath;

impl IntoParams for ListingIdPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9._-]{1,64}$"));
        vec![path_id("The listing's id.", name)]
    }
}

/// A hold's, sale's, booking's or group member's id in the path: a number.
#[derive(Debug)]
pub(crate) struct NumberIdPath;

impl IntoParams for NumberIdPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let number = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0));
        vec![path_id("The id, a number.", number)]
    }
}

fn path_id(description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}
