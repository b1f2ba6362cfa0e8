//! The headers the runtime puts beside an event's datum, and reading them:
//! a leaf every part of the runtime (relay, consumer, replay, dead letters)
//! takes from, so that none of them reaches into another for a name.

use rdkafka::{
    Message,
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
};

/// The event's id, on every published event: a consumer deduplicates and
/// traces by it before decoding the datum.
pub const EVENT_ID_HEADER: &str = "choreo-event-id";
/// The record's short name (`OrderPlaced`), on every published event.
pub(crate) const EVENT_TYPE_HEADER: &str = "choreo-event-type";
/// The event's outbox row id: the order its service committed it in,
/// across all partitions, which a replay of the service's own topic
/// re-applies it in.
pub const OUTBOX_ID_HEADER: &str = "choreo-outbox-id";

/// The headers a relay puts on an event: its id, its record's short name
/// and its outbox row id (the order the service committed its events in,
/// across partitions, which a replay of the service's own topic re-applies
/// them in).
pub fn event_headers(event_id: uuid::Uuid, event_type: &str, outbox_id: i64) -> OwnedHeaders {
    let (event_id, outbox_id) = (event_id.to_string(), outbox_id.to_string());
    OwnedHeaders::new()
        .insert(Header {
            key: EVENT_ID_HEADER,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: EVENT_TYPE_HEADER,
            value: Some(event_type),
        })
        .insert(Header {
            key: OUTBOX_ID_HEADER,
            value: Some(outbox_id.as_str()),
        })
}

/// The value of header `name`, as text.
pub(crate) fn header_text<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
