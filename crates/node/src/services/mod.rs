//! The node as the API's ledger, catalog and admin services, over its
//! replica group, catalog and database, one module per concern (accounts
//! and the agency are services of their own, in `caravan-services`). Storage failures come back as
//! `Internal`, never as a refusal, so the HTTP layer answers 5xx for them.

mod admin;
mod catalog;
mod ledger;

use caravan_api::Internal;
use caravan_store::StoreError;

/// A storage failure as the API's `Internal`.
fn internal(error: StoreError) -> Internal {
    Internal::new(error)
}
