//! Tour section: foundation.

pub fn run() -> multiproc::Result<()> {
    Ok(())
}
