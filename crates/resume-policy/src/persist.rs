//! `serde` support (feature `serde`), for persisting what a resume needs in a session store.
//!
//! A storage format, not a wire format: the names are the Rust ones. A [`HandleToken`] is
//! written as the token itself (a store holds a bearer credential for the session: protect it
//! as one). A [`HandleRecord`] is written without its `connection` field, which is always its
//! coverage's connection, so that no stored record can say two different things.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

use crate::{Coverage, Freshness, HandleRecord, HandleSerial, HandleToken, Millis, SessionEpoch};

impl Serialize for HandleToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for HandleToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(HandleToken::new)
    }
}

/// The stored form of a [`HandleRecord`].
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct HandleRecordRepr {
    token: HandleToken,
    coverage: Coverage,
    freshness: Freshness,
    received_at: Millis,
    serial: HandleSerial,
    epoch: SessionEpoch,
}

impl From<HandleRecordRepr> for HandleRecord {
    fn from(repr: HandleRecordRepr) -> Self {
        HandleRecord::new(
            repr.token,
            repr.coverage,
            repr.freshness,
            repr.received_at,
            repr.serial,
            repr.epoch,
        )
    }
}

impl From<HandleRecord> for HandleRecordRepr {
    fn from(record: HandleRecord) -> Self {
        HandleRecordRepr {
            token: record.token,
            coverage: record.coverage,
            freshness: record.freshness,
            received_at: record.received_at,
            serial: record.serial,
            epoch: record.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        ClientMessageIndex, ConnectionId, Coverage, Freshness, HandleRecord, HandleSerial,
        HandleToken, Millis, SessionEpoch,
    };

    #[test]
    fn a_handle_record_round_trips_and_its_connection_follows_its_coverage() {
        let coverage = Coverage {
            connection: ConnectionId(3),
            through: Some(ClientMessageIndex(7)),
            exact: true,
            answered: Some(ClientMessageIndex(5)),
        };
        let record = HandleRecord::new(
            HandleToken::new("tok-secret"),
            coverage,
            Freshness::StaleSince(Millis(900)),
            Millis(800),
            HandleSerial(4),
            SessionEpoch(2),
        );
        let text = serde_json::to_string(&record).expect("serializes");
        let fields: serde_json::Value = serde_json::from_str(&text).expect("an object");
        assert!(fields.get("connection").is_none(), "stored twice: {text}");
        let back: HandleRecord = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, record);
        assert_eq!(back.connection, ConnectionId(3));
        assert_eq!(back.token.expose(), "tok-secret");
    }
}
