//! Booking across the network, without IO.
//!
//! - [`hold`]: what is asked to be held, and a held hold's reference.
//! - [`protocol`]: the messages of `/caravan/book/1` and their encoding.
//! - [`receipt`]: owner-signed receipts, and hold tokens that bind a hold
//!   to the peer that asked for it.
//! - [`refusal`]: why an owner said no, as stable codes.
//! - [`owner`]: what an owner's node does with a request.
//! - [`saga`]: the agency's all-or-nothing booking of several parts.
//! - [`agency`]: the booking as the agency's API sees it.

pub mod agency;
pub mod hold;
pub mod owner;
pub mod protocol;
pub mod quota;
pub mod receipt;
pub mod refusal;
pub mod saga;

pub use protocol::{BookRequest, BookResponse, HoldRef, HoldSpec, Incoming, Op, Quote, BOOK_BATCH_MAX};
pub use quota::Quotas;
pub use receipt::{sign_batch, verify_all, BatchProof, Receipt, ReceiptError, ReceiptState, SignedReceipt};
pub use refusal::{Refusal, RefusalCode};
pub use saga::{Outcome, Part, PartStatus, Phase, Saga, Step};

/// The libp2p protocol name.
pub const BOOK_PROTOCOL: &str = "/caravan/book/1";
