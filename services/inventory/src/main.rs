//! The inventory service binary: runs the service, or one of its commands
//! (`choreo_service::main` lists them).

fn main() -> anyhow::Result<()> {
    choreo_service::main::<choreo_inventory::InventoryService>()
}
