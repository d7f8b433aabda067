//! [`Message`] on the wire: `caravan.v1.ReconcileMessage`.

use caravan_records::{proto, RecordId};
use prost::Message as _;

use crate::Message;

/// Ids or records one message may carry.
pub const MESSAGE_ITEMS_MAX: usize = 4_096;

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        use proto::reconcile_message::Body;
        let body = match self {
            Message::ReconcileQuery { session, frame } => {
                Body::Query(proto::ReconcileFrame { session: *session, frame: frame.clone(), held: 0 })
            }
            Message::ReconcileReply { session, frame, held } => {
                Body::Reply(proto::ReconcileFrame { session: *session, frame: frame.clone(), held: *held })
            }
            Message::Fetch { request, ids } => {
                Body::Fetch(proto::RecordIds { ids: ids.iter().map(|id| id.0.to_vec()).collect(), request: *request })
            }
            Message::Records { request, records } => {
                Body::Records(proto::Records { records: records.clone(), request: *request })
            }
            Message::Proof(proof) => Body::Proof(proof.clone()),
            Message::List { after } => Body::List(proto::ListAfter { after: after.as_ref().map(listed_item) }),
            Message::Listed { items, held } => {
                Body::Listed(proto::Listed { items: items.iter().map(listed_item).collect(), held: *held })
            }
        };
        proto::ReconcileMessage { body: Some(body) }.encode_to_vec()
    }

    /// Decodes a peer's message; `Err` says what was wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Message, String> {
        use proto::reconcile_message::Body;
        let message = proto::ReconcileMessage::decode(bytes).map_err(|e| e.to_string())?;
        Ok(match message.body.ok_or("empty message")? {
            Body::Query(f) => Message::ReconcileQuery { session: f.session, frame: f.frame },
            Body::Reply(f) => Message::ReconcileReply { session: f.session, frame: f.frame, held: f.held },
            Body::Fetch(fetch) => {
                if fetch.ids.len() > MESSAGE_ITEMS_MAX {
                    return Err(format!("{} ids, at most {MESSAGE_ITEMS_MAX}", fetch.ids.len()));
                }
                let ids = fetch.ids.iter().map(|id| id.as_slice().try_into().map(RecordId)).collect::<Result<_, _>>();
                Message::Fetch { request: fetch.request, ids: ids.map_err(|_| "a record id is 32 bytes")? }
            }
            Body::Records(records) => {
                if records.records.len() > MESSAGE_ITEMS_MAX {
                    return Err(format!("{} records, at most {MESSAGE_ITEMS_MAX}", records.records.len()));
                }
                Message::Records { request: records.request, records: records.records }
            }
            Body::Proof(proof) => Message::Proof(proof),
            Body::List(list) => Message::List { after: list.after.map(item_of).transpose()? },
            Body::Listed(listed) => {
                if listed.items.len() > MESSAGE_ITEMS_MAX {
                    return Err(format!("{} listed, at most {MESSAGE_ITEMS_MAX}", listed.items.len()));
                }
                let items = listed.items.into_iter().map(item_of).collect::<Result<_, _>>()?;
                Message::Listed { items, held: listed.held }
            }
        })
    }
}

fn listed_item((time_ms, id): &(u64, RecordId)) -> proto::ListedItem {
    proto::ListedItem { time_ms: *time_ms, id: id.0.to_vec() }
}

fn item_of(item: proto::ListedItem) -> Result<(u64, RecordId), String> {
    let id = item.id.as_slice().try_into().map_err(|_| "a record id is 32 bytes")?;
    Ok((item.time_ms, RecordId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let messages = [
            Message::ReconcileQuery { session: 7, frame: vec![1, 2, 3] },
            Message::ReconcileReply { session: 7, frame: vec![], held: 12 },
            Message::List { after: None },
            Message::List { after: Some((5, RecordId([3; 32]))) },
            Message::Listed { items: vec![(5, RecordId([3; 32])), (6, RecordId([1; 32]))], held: 2 },
            Message::Fetch { request: 3, ids: vec![RecordId([9; 32])] },
            Message::Records { request: 3, records: vec![vec![1], vec![2, 3]] },
            Message::Proof(vec![4, 5]),
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
        assert!(Message::decode(&[]).is_err(), "empty");
        let short_id = proto::ReconcileMessage {
            body: Some(proto::reconcile_message::Body::Fetch(proto::RecordIds { ids: vec![vec![1, 2]], request: 0 })),
        };
        assert!(Message::decode(&short_id.encode_to_vec()).is_err());
        let short_listed = proto::ReconcileMessage {
            body: Some(proto::reconcile_message::Body::Listed(proto::Listed {
                items: vec![proto::ListedItem { time_ms: 1, id: vec![7; 31] }],
                held: 1,
            })),
        };
        assert!(Message::decode(&short_listed.encode_to_vec()).is_err());
    }
}
