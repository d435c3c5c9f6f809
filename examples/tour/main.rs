//! `cargo run --release --example tour`: every capability of multiproc, across real
//! processes, with a few figures measured on this machine.

mod common;
mod foundation;
mod pipe;
mod pool;
mod queue;
mod sync;

fn main() -> multiproc::Result<()> {
    println!("multiproc tour — pid {}", std::process::id());
    foundation::run()?;
    sync::run()?;
    queue::run()?;
    pipe::run()?;
    pool::run()?;
    println!("\ntour complete");
    Ok(())
}
