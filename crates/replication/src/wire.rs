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
                Body::Query(proto::ReconcileFrame { session: *session, frame: frame.clone() })
            }
            Message::ReconcileReply { session, frame } => {
                Body::Reply(proto::ReconcileFrame { session: *session, frame: frame.clone() })
            }
            Message::Fetch { ids } => {
                Body::Fetch(proto::RecordIds { ids: ids.iter().map(|id| id.0.to_vec()).collect() })
            }
            Message::Records { records } => Body::Records(proto::Records { records: records.clone() }),
            Message::Proof(proof) => Body::Proof(proof.clone()),
        };
        proto::ReconcileMessage { body: Some(body) }.encode_to_vec()
    }

    /// Decodes a peer's message; `Err` says what was wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Message, String> {
        use proto::reconcile_message::Body;
        let message = proto::ReconcileMessage::decode(bytes).map_err(|e| e.to_string())?;
        Ok(match message.body.ok_or("empty message")? {
            Body::Query(f) => Message::ReconcileQuery { session: f.session, frame: f.frame },
            Body::Reply(f) => Message::ReconcileReply { session: f.session, frame: f.frame },
            Body::Fetch(fetch) => {
                if fetch.ids.len() > MESSAGE_ITEMS_MAX {
                    return Err(format!("{} ids, at most {MESSAGE_ITEMS_MAX}", fetch.ids.len()));
                }
                let ids = fetch.ids.iter().map(|id| id.as_slice().try_into().map(RecordId)).collect::<Result<_, _>>();
                Message::Fetch { ids: ids.map_err(|_| "a record id is 32 bytes")? }
            }
            Body::Records(records) => {
                if records.records.len() > MESSAGE_ITEMS_MAX {
                    return Err(format!("{} records, at most {MESSAGE_ITEMS_MAX}", records.records.len()));
                }
                Message::Records { records: records.records }
            }
            Body::Proof(proof) => Message::Proof(proof),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let messages = [
            Message::ReconcileQuery { session: 7, frame: vec![1, 2, 3] },
            Message::ReconcileReply { session: 7, frame: vec![] },
            Message::Fetch { ids: vec![RecordId([9; 32])] },
            Message::Records { records: vec![vec![1], vec![2, 3]] },
            Message::Proof(vec![4, 5]),
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
        assert!(Message::decode(&[]).is_err(), "empty");
        let short_id = proto::ReconcileMessage {
            body: Some(proto::reconcile_message::Body::Fetch(proto::RecordIds { ids: vec![vec![1, 2]] })),
        };
        assert!(Message::decode(&short_id.encode_to_vec()).is_err());
    }
}
