//! The node as the API's services: each trait of `caravan_api::services`
//! implemented over the node's replica group, catalog, sagas and
//! database, one module per concern. Storage failures come back as
//! `Internal`, never as a refusal, so the HTTP layer answers 5xx for them.

mod accounts;
mod admin;
mod agency;
mod catalog;
mod ledger;

use caravan_api::Internal;
use caravan_store::StoreError;

/// A storage failure as the API's `Internal`.
fn internal(error: StoreError) -> Internal {
    Internal::new(error)
}
