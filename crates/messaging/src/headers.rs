//! The headers the runtime puts beside an event's datum, and reading them:
//! a leaf every part of the runtime (relay, consumer, replay, dead letters)
//! takes from, so that none of them reaches into another for a name.

use rdkafka::{
    Message,
    message::{Headers, OwnedMessage},
};

/// The event's id, on every published event: a consumer deduplicates and
/// traces by it before decoding the datum.
pub const EVENT_ID_HEADER: &str = "choreo-event-id";
/// The record's short name (`OrderPlaced`), on every published event.
pub const EVENT_TYPE_HEADER: &str = "choreo-event-type";
/// The event's outbox row id: the order its service committed it in,
/// across all partitions, which a replay of the service's own topic
/// re-applies it in.
pub const OUTBOX_ID_HEADER: &str = "choreo-outbox-id";

/// The value of header `name`, as text.
pub(crate) fn header_text<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
