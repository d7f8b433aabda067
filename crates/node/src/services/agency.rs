//! The agency service: bookings of any mix of parts, run by sagas.

use caravan_api::async_trait;
use caravan_api::AgencyService;
use caravan_booking::agency::{Booking, BookingError, Decision, NewBooking};

use crate::Node;

#[async_trait]
impl AgencyService for Node {
    async fn create_booking(&self, new: NewBooking) -> Result<Booking, BookingError> {
        Node::create_booking(self, new).await
    }

    async fn booking(&self, id: u64) -> Result<Option<Booking>, BookingError> {
        self.agency_booking(id).await
    }

    async fn bookings(
        &self,
        user: Option<u64>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Booking>, BookingError> {
        self.agency_bookings(user, before_id, limit).await
    }

    async fn decide_booking(&self, id: u64, decision: Decision) -> Result<Booking, BookingError> {
        self.decide_agency_booking(id, decision).await
    }

    async fn cancel_booking(&self, id: u64) -> Result<Booking, BookingError> {
        self.cancel_agency_booking(id).await
    }
}
