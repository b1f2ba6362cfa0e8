//! Every record survives encoding and decoding against its own `.avsc`, and
//! each `.avsc` in `schemas/` belongs to a record Choreo knows.

use choreo_events::*;
use uuid::Uuid;

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        line2: None,
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country: "GB".into(),
    }
}

fn placed() -> OrderPlaced {
    let order_id = Uuid::new_v4();
    OrderPlaced {
        meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
        order_id,
        customer_id: "cust-1".into(),
        lines: vec![OrderLine {
            sku: "SKU-1".into(),
            quantity: 2,
        }],
        shipping_address: ShippingAddress {
            line2: Some("Flat 3".into()),
            ..address()
        },
        idempotency_key: Some("retry-7".into()),
    }
}

/// The happy path's events after `placed`, each caused by the one before.
fn reserved(p: &OrderPlaced) -> StockReserved {
    StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&p.meta, "inventory"),
        order_id: p.order_id,
        customer_id: p.customer_id.clone(),
        lines: vec![PricedLine {
            sku: "SKU-1".into(),
            quantity: 2,
            unit_price_cents: 1_299,
            line_total_cents: 2_598,
        }],
        total_cents: 2_598,
        currency: "EUR".into(),
        shipping_address: Some(address()),
    }
}

fn paid(reserved: &StockReserved) -> PaymentCompleted {
    PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment"),
        order_id: reserved.order_id,
        payment_id: Uuid::new_v4(),
        customer_id: reserved.customer_id.clone(),
        amount_cents: reserved.total_cents,
        currency: reserved.currency.clone(),
        shipping_address: reserved.shipping_address.clone(),
    }
}

fn shipped(paid: &PaymentCompleted) -> ShipmentScheduled {
    ShipmentScheduled {
        meta: EventMeta::caused_by::<ShipmentScheduled>(&paid.meta, "shipping"),
        order_id: paid.order_id,
        shipment_id: Uuid::new_v4(),
        country: "GB".into(),
        payment: Some(paid.meta.clone()),
    }
}

/// Encodes with the record's own schema, frames, unframes and resolves back.
fn roundtrip<E: Event + PartialEq + std::fmt::Debug>(event: &E) -> E {
    let datum = encode_datum(event).expect("encodes");
    let framed = frame(7, &datum);
    let (id, body) = unframe(&framed).expect("unframes");
    assert_eq!(id, 7);
    let value =
        apache_avro::from_avro_datum(E::schema(), &mut &body[..], None).expect("valid datum");
    apache_avro::from_value::<E>(&value).expect("decodes")
}

#[test]
fn every_event_round_trips_through_its_avsc() {
    let p = placed();
    assert_eq!(roundtrip(&p), p);

    let confirmed = OrderConfirmed {
        meta: EventMeta::caused_by::<OrderConfirmed>(&p.meta, "order"),
        order_id: p.order_id,
        total_cents: 2_598,
        currency: "EUR".into(),
    };
    assert_eq!(roundtrip(&confirmed), confirmed);

    let reserved = reserved(&p);
    assert_eq!(roundtrip(&reserved), reserved);
    let paid = paid(&reserved);
    assert_eq!(roundtrip(&paid), paid);
    let shipped = shipped(&paid);
    assert_eq!(roundtrip(&shipped), shipped);
}

#[test]
fn the_catalog_covers_every_avsc_file() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
    let mut on_disk = Vec::new();
    for topic in std::fs::read_dir(dir).expect("schemas/ exists") {
        let topic = topic.expect("entry");
        for file in std::fs::read_dir(topic.path()).expect("topic folder") {
            let path = file.expect("entry").path();
            let topic_name = topic.file_name().to_string_lossy().into_owned();
            let record = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            on_disk.push((topic_name, record));
        }
    }
    on_disk.sort();
    let mut known: Vec<_> = catalog()
        .into_iter()
        .map(|(t, name, _)| (t.base_name().to_owned(), name.to_owned()))
        .collect();
    known.sort();
    assert_eq!(on_disk, known);
}

#[test]
fn event_ids_are_derived_from_their_cause() {
    let p = placed();
    let a = EventMeta::caused_by::<StockReserved>(&p.meta, "inventory");
    let b = EventMeta::caused_by::<StockReserved>(&p.meta, "inventory");
    let other = EventMeta::caused_by::<PaymentCompleted>(&p.meta, "payment");
    assert_eq!(
        a.event_id, b.event_id,
        "handling a cause twice yields the same id"
    );
    assert_ne!(a.event_id, other.event_id);
    assert_eq!(a.causation_id, Some(p.meta.event_id));
    assert_eq!(a.correlation_id, p.order_id);
}

#[test]
fn framing_rejects_foreign_bytes() {
    assert!(matches!(
        unframe(b"{}"),
        Err(CodecError::TooShort { len: 2 })
    ));
    assert!(matches!(
        unframe(b"{\"a\":1}"),
        Err(CodecError::BadMagic(b'{'))
    ));
}

#[test]
fn a_message_is_not_parsed_as_another_record() {
    let p = placed();
    let datum = encode_datum(&p).expect("encodes");
    let err = apache_avro::from_avro_datum(OrderConfirmed::schema(), &mut &datum[..], None)
        .and_then(|v| apache_avro::from_value::<OrderConfirmed>(&v));
    assert!(
        err.is_err(),
        "an OrderPlaced datum must not decode as OrderConfirmed"
    );
}

#[test]
fn every_compensation_event_round_trips_through_its_avsc() {
    let p = placed();
    let cancelled = OrderCancelled {
        meta: EventMeta::once_per_order::<OrderCancelled>(p.order_id, None, "order"),
        order_id: p.order_id,
        reason: cancel_reason::CUSTOMER_CANCELLED.into(),
        detail: "the customer cancelled".into(),
    };
    assert_eq!(roundtrip(&cancelled), cancelled);
    let rejected = StockRejected {
        meta: EventMeta::caused_by::<StockRejected>(&p.meta, "inventory"),
        order_id: p.order_id,
        reason: "OUT_OF_STOCK".into(),
        shortages: vec![StockShortage {
            sku: "SKU-1".into(),
            requested: 2,
            available: 1,
        }],
        customer_id: Some("c-1".into()),
    };
    assert_eq!(roundtrip(&rejected), rejected);
    let released = StockReleased {
        meta: EventMeta::caused_by::<StockReleased>(&cancelled.meta, "inventory"),
        order_id: p.order_id,
        reason: cancelled.reason.clone(),
        lines: p.lines.clone(),
    };
    assert_eq!(roundtrip(&released), released);
    let failed = PaymentFailed {
        meta: EventMeta::caused_by::<PaymentFailed>(&p.meta, "payment"),
        order_id: p.order_id,
        customer_id: "cust-1".into(),
        amount_cents: 100,
        reason: "INSUFFICIENT_FUNDS".into(),
    };
    assert_eq!(roundtrip(&failed), failed);
    let refunded = PaymentRefunded {
        meta: EventMeta::caused_by::<PaymentRefunded>(&cancelled.meta, "payment"),
        order_id: p.order_id,
        payment_id: Uuid::new_v4(),
        customer_id: "cust-1".into(),
        amount_cents: 100,
        currency: "EUR".into(),
        reason: cancelled.reason.clone(),
        payment: Some(EventMeta::caused_by::<PaymentCompleted>(&p.meta, "payment")),
    };
    assert_eq!(roundtrip(&refunded), refunded);
    let mut defaulted = refunded.clone();
    defaulted.payment = None;
    reads_without(
        &refunded,
        "payment.events/PaymentRefunded.avsc",
        "payment",
        &defaulted,
    );
    let shipment_failed = ShipmentFailed {
        meta: EventMeta::once_per_order::<ShipmentFailed>(
            p.order_id,
            Some(p.meta.event_id),
            "shipping",
        ),
        order_id: p.order_id,
        country: "AQ".into(),
        reason: "COUNTRY_NOT_SERVED".into(),
        payment: None,
    };
    assert_eq!(roundtrip(&shipment_failed), shipment_failed);
    let shipment_cancelled = ShipmentCancelled {
        meta: EventMeta::caused_by::<ShipmentCancelled>(&cancelled.meta, "shipping"),
        order_id: p.order_id,
        shipment_id: Uuid::new_v4(),
        reason: cancelled.reason.clone(),
    };
    assert_eq!(roundtrip(&shipment_cancelled), shipment_cancelled);
}

/// `event` written with its `.avsc` less `field`, the way a service older
/// than the field wrote it, and read back with the current schema.
fn written_without<E>(event: &E, avsc: &str, field: &str) -> E
where
    E: Event + serde::Serialize + serde::de::DeserializeOwned,
{
    let path = format!("{}/../../schemas/{avsc}", env!("CARGO_MANIFEST_DIR"));
    let mut older: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the .avsc")).expect("JSON");
    let fields = older["fields"].as_array_mut().expect("fields");
    let before = fields.len();
    fields.retain(|f| f["name"] != field);
    assert_eq!(fields.len() + 1, before, "{avsc} has a field {field}");
    let older = apache_avro::Schema::parse(&older).expect("the older schema");
    let mut value = apache_avro::to_value(event).expect("to a value");
    if let apache_avro::types::Value::Record(fields) = &mut value {
        fields.retain(|(name, _)| name != field);
    }
    let value = value.resolve(&older).expect("matches the older schema");
    let datum = apache_avro::to_avro_datum(&older, value).expect("written the old way");
    let read = apache_avro::from_avro_datum(&older, &mut &datum[..], Some(E::schema()))
        .expect("resolves to the current schema");
    apache_avro::from_value::<E>(&read).expect("decodes")
}

/// An `OrderPlaced` published before the record had `idempotency_key`
/// still reads, as an order placed without a key: the field was added with
/// a default, so topics written by an older order service stay readable.
#[test]
fn an_order_placed_from_before_idempotency_keys_reads_without_one() {
    let mut p = placed();
    let read = written_without(&p, "order.events/OrderPlaced.avsc", "idempotency_key");
    p.idempotency_key = None;
    assert_eq!(read, p);
}

/// `event` written without `field` reads back as `event` with the field's
/// default.
fn reads_without<E>(event: &E, avsc: &str, field: &str, defaulted: &E)
where
    E: Event + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(
        &written_without(event, avsc, field),
        defaulted,
        "{avsc} without {field}"
    );
}

/// The address and the payment's envelope travel with the saga since
/// services stopped reading events only for them; events written before
/// still read, with neither.
#[test]
fn events_from_before_the_carried_address_and_payment_read_without_them() {
    let reserved = reserved(&placed());
    let mut defaulted = reserved.clone();
    defaulted.shipping_address = None;
    let avsc = "inventory.events/StockReserved.avsc";
    reads_without(&reserved, avsc, "shipping_address", &defaulted);

    let paid = paid(&reserved);
    let mut defaulted = paid.clone();
    defaulted.shipping_address = None;
    let avsc = "payment.events/PaymentCompleted.avsc";
    reads_without(&paid, avsc, "shipping_address", &defaulted);

    let shipped = shipped(&paid);
    let mut defaulted = shipped.clone();
    defaulted.payment = None;
    let avsc = "shipping.events/ShipmentScheduled.avsc";
    reads_without(&shipped, avsc, "payment", &defaulted);

    let failed = ShipmentFailed {
        meta: EventMeta::caused_by::<ShipmentFailed>(&paid.meta, "shipping"),
        order_id: paid.order_id,
        country: "AQ".into(),
        reason: "COUNTRY_NOT_SERVED".into(),
        payment: Some(paid.meta.clone()),
    };
    let mut defaulted = failed.clone();
    defaulted.payment = None;
    reads_without(
        &failed,
        "shipping.events/ShipmentFailed.avsc",
        "payment",
        &defaulted,
    );
}
