//! Tour section: pipe.

pub fn run() -> multiproc::Result<()> {
    Ok(())
}
