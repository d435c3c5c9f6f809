//! Tour section: pool.

pub fn run() -> multiproc::Result<()> {
    Ok(())
}
