//! Tour section: sync.

pub fn run() -> multiproc::Result<()> {
    Ok(())
}
