//! The sales of one's services, with who travels.

use super::*;

#[derive(Template)]
#[template(path = "sales.html")]
struct SalesPage {
    nav: Nav,
    sales: Vec<HoldView>,
}

/// Sales the page lists, newest first.
const SALES_SHOWN: usize = 200;

/// Bookings of the services one manages, newest first, with who travels.
pub(crate) async fn sales_page(State(app): State<AppState>, SignedIn { principal, session }: SignedIn) -> Response {
    let managed = match managed(&app, &principal).await {
        Ok(managed) => managed,
        Err(response) => return response,
    };
    let sales = app.read_ledger(|ledger| {
        let mut sales: Vec<HoldView> = ledger
            .holds()
            .filter(|hold| hold.state.is_booking() || hold.state == caravan_ledger::HoldState::Held)
            .filter(|hold| managed.as_ref().is_none_or(|m| m.contains(hold.request.listing().as_str())))
            .map(|hold| HoldView::from_ledger(ledger, hold))
            .collect();
        sales.reverse();
        sales.truncate(SALES_SHOWN);
        sales
    });
    render(&SalesPage { nav: Nav::of(&principal, &session), sales })
}
