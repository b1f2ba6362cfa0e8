//! The rows a run of order events reads and writes: locked at its start with
//! a few statements, changed in memory by the handlers one event after
//! another, and written back at its end with a few more. A replay applies
//! sixty events this way with about as many statements as one event took
//! alone; a single event goes the same way, so there is one set of rules.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Where an order stands with inventory: the `reservations.status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Its stock is held for it.
    Reserved,
    /// Cancelled after its reservation: the stock went back.
    Released,
    /// Confirmed: its stock left the warehouse.
    Shipped,
    /// Stock was short; nothing was reserved.
    Rejected,
    /// Cancelled before inventory saw it; nothing will be reserved.
    Voided,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Reserved => "RESERVED",
            Status::Released => "RELEASED",
            Status::Shipped => "SHIPPED",
            Status::Rejected => "REJECTED",
            Status::Voided => "VOIDED",
        }
    }

    fn parse(text: &str) -> Result<Self, sqlx::Error> {
        Ok(match text {
            "RESERVED" => Status::Reserved,
            "RELEASED" => Status::Released,
            "SHIPPED" => Status::Shipped,
            "REJECTED" => Status::Rejected,
            "VOIDED" => Status::Voided,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown reservation status {other:?}").into(),
                ));
            }
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where reserved stock goes when the saga ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settlement {
    /// The order was cancelled: back to the free stock.
    Release,
    /// The order was confirmed: out of the warehouse.
    Ship,
}

/// A product's stock as the run sees it.
#[derive(Debug)]
pub(crate) struct Shelf {
    pub(crate) price_cents: i64,
    pub(crate) currency: String,
    pub(crate) available: i32,
    reserved: i32,
    shipped: i32,
    /// The latest time the run changed it at; `None` while unchanged.
    changed_at: Option<DateTime<Utc>>,
}

impl Shelf {
    fn touch(&mut self, at: DateTime<Utc>) {
        self.changed_at = Some(self.changed_at.map_or(at, |t| t.max(at)));
    }
}

/// One reserved line: SKU, quantity, unit price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) sku: String,
    pub(crate) quantity: i32,
    pub(crate) unit_price_cents: i64,
}

/// A reservation the run made.
#[derive(Debug)]
struct NewReservation {
    customer_id: String,
    total_cents: i64,
    currency: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Order {
    status: Status,
    /// The lines held for it, in SKU order (none unless it was reserved).
    lines: Vec<Line>,
    /// `Some` when the run made its row; else the row was there before.
    new: Option<NewReservation>,
    /// Whether `status` differs from the stored row's.
    changed: bool,
}

/// The rows of a run of events, locked in its transaction.
#[derive(Debug, Default)]
pub(crate) struct Stock {
    shelves: BTreeMap<String, Shelf>,
    orders: HashMap<Uuid, Order>,
}

/// What a run needs locked: the orders its events are about, and the SKUs
/// its placed orders ask for.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub(crate) orders: Vec<Uuid>,
    pub(crate) skus: Vec<String>,
}

impl Stock {
    /// Locks the reservations of `wanted.orders` and every product the run
    /// can touch (those asked for, and those the orders hold), in key order
    /// so that two runs cannot deadlock.
    pub(crate) async fn lock(conn: &mut PgConnection, wanted: Wanted) -> Result<Self, sqlx::Error> {
        let Wanted {
            mut orders,
            mut skus,
        } = wanted;
        orders.sort_unstable();
        orders.dedup();
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)
             ORDER BY order_id FOR UPDATE",
        )
        .bind(&orders)
        .fetch_all(&mut *conn)
        .await?;
        let mut stock = Stock::default();
        let mut reserved = Vec::new();
        for (order_id, status) in rows {
            let status = Status::parse(&status)?;
            if status == Status::Reserved {
                reserved.push(order_id);
            }
            stock.orders.insert(
                order_id,
                Order {
                    status,
                    lines: Vec::new(),
                    new: None,
                    changed: false,
                },
            );
        }
        if !reserved.is_empty() {
            let lines: Vec<(Uuid, String, i32, i64)> = sqlx::query_as(
                "SELECT order_id, sku, quantity, unit_price_cents FROM reservation_lines
                 WHERE order_id = ANY($1) ORDER BY order_id, sku",
            )
            .bind(&reserved)
            .fetch_all(&mut *conn)
            .await?;
            for (order_id, sku, quantity, unit_price_cents) in lines {
                skus.push(sku.clone());
                if let Some(order) = stock.orders.get_mut(&order_id) {
                    order.lines.push(Line {
                        sku,
                        quantity,
                        unit_price_cents,
                    });
                }
            }
        }
        skus.sort_unstable();
        skus.dedup();
        if !skus.is_empty() {
            let products: Vec<(String, i64, String, i32, i32, i32)> = sqlx::query_as(
                "SELECT sku, price_cents, currency, available, reserved, shipped FROM products
                 WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
            )
            .bind(&skus)
            .fetch_all(&mut *conn)
            .await?;
            for (sku, price_cents, currency, available, reserved, shipped) in products {
                stock.shelves.insert(
                    sku,
                    Shelf {
                        price_cents,
                        currency,
                        available,
                        reserved,
                        shipped,
                        changed_at: None,
                    },
                );
            }
        }
        Ok(stock)
    }

    /// [`Stock::lock`] for one order and the products `skus`.
    pub(crate) async fn lock_order(
        conn: &mut PgConnection,
        order_id: Uuid,
        skus: Vec<String>,
    ) -> Result<Self, sqlx::Error> {
        let orders = vec![order_id];
        Self::lock(conn, Wanted { orders, skus }).await
    }

    /// Where the order stands; `None` when inventory has not seen it.
    pub(crate) fn status(&self, order_id: Uuid) -> Option<Status> {
        self.orders.get(&order_id).map(|o| o.status)
    }

    /// The product with this SKU, if the catalog has it.
    pub(crate) fn shelf(&self, sku: &str) -> Option<&Shelf> {
        self.shelves.get(sku)
    }

    /// Records an order without reserving anything (`Rejected` or
    /// `Voided`), so that any later copy of its events is a no-op. `at`:
    /// the time of the `StockRejected`, or of the `OrderCancelled` a void
    /// answers.
    pub(crate) fn tombstone(
        &mut self,
        order_id: Uuid,
        customer_id: &str,
        status: Status,
        at: DateTime<Utc>,
    ) {
        let row = NewReservation {
            customer_id: customer_id.to_owned(),
            total_cents: 0,
            currency: "EUR".to_owned(),
            created_at: at,
        };
        self.insert(order_id, status, Vec::new(), row);
    }

    /// Holds `lines` for the order: each moves from `available` to
    /// `reserved`, as of `at` (the `StockReserved`'s time). The caller has
    /// checked that every line fits.
    pub(crate) fn reserve(
        &mut self,
        order_id: Uuid,
        customer_id: &str,
        total_cents: i64,
        currency: &str,
        lines: Vec<Line>,
        at: DateTime<Utc>,
    ) {
        for line in &lines {
            if let Some(shelf) = self.shelves.get_mut(&line.sku) {
                shelf.available -= line.quantity;
                shelf.reserved += line.quantity;
                shelf.touch(at);
            }
        }
        let row = NewReservation {
            customer_id: customer_id.to_owned(),
            total_cents,
            currency: currency.to_owned(),
            created_at: at,
        };
        self.insert(order_id, Status::Reserved, lines, row);
    }

    /// The order's row, made by this run.
    fn insert(&mut self, order_id: Uuid, status: Status, lines: Vec<Line>, row: NewReservation) {
        let order = Order {
            status,
            lines,
            new: Some(row),
            changed: false,
        };
        self.orders.insert(order_id, order);
    }

    /// Moves a reserved order's lines out of `reserved`: back to
    /// `available` (released) or to `shipped`, as of `at` (the
    /// `StockReleased`, or the `OrderConfirmed` a shipment answers).
    /// Returns the lines moved, in SKU order.
    pub(crate) fn settle(
        &mut self,
        order_id: Uuid,
        outcome: Settlement,
        at: DateTime<Utc>,
    ) -> Vec<Line> {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return Vec::new();
        };
        for line in &order.lines {
            if let Some(shelf) = self.shelves.get_mut(&line.sku) {
                shelf.reserved -= line.quantity;
                match outcome {
                    Settlement::Release => shelf.available += line.quantity,
                    Settlement::Ship => shelf.shipped += line.quantity,
                }
                shelf.touch(at);
            }
        }
        order.status = match outcome {
            Settlement::Release => Status::Released,
            Settlement::Ship => Status::Shipped,
        };
        order.changed = order.new.is_none();
        order.lines.clone()
    }

    /// Writes what the run changed: new reservations and their lines, the
    /// statuses that moved, and the products' stock, with one statement
    /// each.
    pub(crate) async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let mut new = NewRows::default();
        let mut moved: (Vec<Uuid>, Vec<&str>) = Default::default();
        for (order_id, order) in &self.orders {
            match &order.new {
                Some(row) => new.push(*order_id, order, row),
                None if order.changed => {
                    moved.0.push(*order_id);
                    moved.1.push(order.status.as_str());
                }
                None => {}
            }
        }
        new.insert(conn).await?;
        if !moved.0.is_empty() {
            sqlx::query(
                "UPDATE reservations r SET status = u.status
                 FROM unnest($1::uuid[], $2::text[]) AS u(order_id, status)
                 WHERE r.order_id = u.order_id",
            )
            .bind(&moved.0)
            .bind(&moved.1)
            .execute(&mut *conn)
            .await?;
        }
        let mut shelves = ShelfRows::default();
        for (sku, shelf) in &self.shelves {
            if let Some(at) = shelf.changed_at {
                shelves.push(sku, shelf, at);
            }
        }
        shelves.update(conn).await
    }
}

/// The products a run changed, column by column.
#[derive(Default)]
struct ShelfRows<'a> {
    skus: Vec<&'a str>,
    available: Vec<i32>,
    reserved: Vec<i32>,
    shipped: Vec<i32>,
    changed_at: Vec<DateTime<Utc>>,
}

impl<'a> ShelfRows<'a> {
    fn push(&mut self, sku: &'a str, shelf: &Shelf, at: DateTime<Utc>) {
        self.skus.push(sku);
        self.available.push(shelf.available);
        self.reserved.push(shelf.reserved);
        self.shipped.push(shelf.shipped);
        self.changed_at.push(at);
    }

    /// The rows are locked since [`Stock::lock`], so the run's numbers are
    /// the stock's. A product's `updated_at` is its latest change's time,
    /// whatever order a replay applies the partitions in.
    async fn update(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.skus.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE products p SET available = u.available, reserved = u.reserved,
                 shipped = u.shipped, updated_at = GREATEST(p.updated_at, u.at)
             FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::timestamptz[])
                  AS u(sku, available, reserved, shipped, at)
             WHERE p.sku = u.sku",
        )
        .bind(&self.skus)
        .bind(&self.available)
        .bind(&self.reserved)
        .bind(&self.shipped)
        .bind(&self.changed_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The reservation rows a run made, and their lines, column by column.
#[derive(Default)]
struct NewRows<'a> {
    order_ids: Vec<Uuid>,
    customer_ids: Vec<&'a str>,
    statuses: Vec<&'static str>,
    totals: Vec<i64>,
    currencies: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
    line_orders: Vec<Uuid>,
    line_skus: Vec<&'a str>,
    line_quantities: Vec<i32>,
    line_prices: Vec<i64>,
}

impl<'a> NewRows<'a> {
    fn push(&mut self, order_id: Uuid, order: &'a Order, row: &'a NewReservation) {
        self.order_ids.push(order_id);
        self.customer_ids.push(&row.customer_id);
        self.statuses.push(order.status.as_str());
        self.totals.push(row.total_cents);
        self.currencies.push(&row.currency);
        self.created_at.push(row.created_at);
        for line in &order.lines {
            self.line_orders.push(order_id);
            self.line_skus.push(&line.sku);
            self.line_quantities.push(line.quantity);
            self.line_prices.push(line.unit_price_cents);
        }
    }

    /// No `ON CONFLICT`: the run locked the orders it read, and a row made
    /// meanwhile is a unique violation, which the runtime retries event by
    /// event (the retry sees the row).
    async fn insert(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.order_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO reservations (order_id, customer_id, status, total_cents, currency, created_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                  $6::timestamptz[])",
        )
        .bind(&self.order_ids)
        .bind(&self.customer_ids)
        .bind(&self.statuses)
        .bind(&self.totals)
        .bind(&self.currencies)
        .bind(&self.created_at)
        .execute(&mut *conn)
        .await?;
        if !self.line_orders.is_empty() {
            sqlx::query(
                "INSERT INTO reservation_lines (order_id, sku, quantity, unit_price_cents)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[])",
            )
            .bind(&self.line_orders)
            .bind(&self.line_skus)
            .bind(&self.line_quantities)
            .bind(&self.line_prices)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
