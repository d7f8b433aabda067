//! API errors: a status, a stable code and a message, always as JSON.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use caravan_ledger::Rejection;

use crate::openapi::ErrorBody;
use crate::services::{AccountsError, FaultHooksOff, GroupChangeError, Internal, SubmitError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// A field the client sent does not parse or breaks a rule.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Our failure, not the client's. Logged here, once; the client gets no details.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the operator's log has details")
    }

    /// The service cannot answer now; the client may retry (with the same
    /// idempotency key, where it sent one).
    pub fn unavailable(reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("try again: {reason}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.code, message: self.message })).into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        use Rejection::*;
        let status = match &rejection {
            UnknownListing(_) | UnknownHold(_) => StatusCode::NOT_FOUND,
            InvalidListing(_) | InvalidRequest(_) | WrongKind { .. } | SeatUnknown(_) | IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ListingExists(_)
            | ListingWithdrawn(_)
            | ListingPaused(_)
            | NotForSale { .. }
            | SoldOut { .. }
            | Restriction(_)
            | SeatTaken(_)
            | PriceChanged { .. }
            | HoldExpired(_)
            | HoldNotLive { .. }
            | BelowCommitted { .. }
            | LimitReached(_)
            | BookingChanged { .. } => StatusCode::CONFLICT,
            QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        ApiError::new(status, rejection.code(), rejection.to_string())
    }
}

impl From<GroupChangeError> for ApiError {
    fn from(error: GroupChangeError) -> ApiError {
        match error {
            GroupChangeError::Refused(why) => ApiError::new(StatusCode::CONFLICT, "group_change_refused", why),
            GroupChangeError::Unavailable(why) => ApiError::unavailable(why),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> ApiError {
        match error {
            SubmitError::Rejected(rejection) => rejection.into(),
            SubmitError::Unavailable(reason) => ApiError::unavailable(reason),
        }
    }
}

impl From<Internal> for ApiError {
    fn from(error: Internal) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<AccountsError> for ApiError {
    fn from(error: AccountsError) -> ApiError {
        match error {
            AccountsError::Invalid(invalid) => ApiError::invalid(invalid.to_string()),
            AccountsError::BadLink => ApiError::new(StatusCode::BAD_REQUEST, "bad_link", error.to_string()),
            AccountsError::MailNotSent => ApiError::unavailable("the mail could not be sent"),
            AccountsError::Internal(internal) => internal.into(),
        }
    }
}

impl From<FaultHooksOff> for ApiError {
    fn from(error: FaultHooksOff) -> ApiError {
        ApiError::not_found(error.to_string())
    }
}

impl From<caravan_model::ParseError> for ApiError {
    fn from(error: caravan_model::ParseError) -> ApiError {
        ApiError::invalid(error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        // This error is caused by bad user input, so it is not logged.
        let (status, code) = match &rejection {
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text())
    }
}
