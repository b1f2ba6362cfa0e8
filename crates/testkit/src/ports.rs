//! Free local ports for the processes a test starts.

/// A port free now, from the kernel.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free local port: {e}"))
}

/// A base port with the `count - 1` after it free too, for a platform whose
/// processes take consecutive ports.
pub fn free_port_block(count: u16) -> u16 {
    // Below Linux's ephemeral range (32768 and up): a port probed free
    // there can be taken by an outgoing connection (a Kafka client's)
    // before the service binds it, and stay taken (seen once: payment
    // failed to start seven times in a chaos run).
    loop {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}
