//! Tour section: queue.

pub fn run() -> multiproc::Result<()> {
    Ok(())
}
