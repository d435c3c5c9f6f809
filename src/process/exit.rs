//! How a child ends: the exit code its closure's result becomes ([`IntoExitCode`]),
//! the code of a panic, and the one exit path every forked or spawned child takes.

use super::registry;
use crate::sys::process as os;
use std::fmt;
use std::io::{self, Write};

/// What a child's closure may return: its exit code.
///
/// `()` is 0, an `i32`/`u8` is the code itself (the kernel keeps the low 8 bits), and
/// `Result<T, E>` is `T`'s code or, for `Err(e)`, prints `Error: {e:?}` on stderr and
/// exits with 1 — like a Rust `main`.
pub trait IntoExitCode {
    /// The exit code the child ends with.
    fn into_exit_code(self) -> i32;
}

impl IntoExitCode for () {
    fn into_exit_code(self) -> i32 {
        0
    }
}

impl IntoExitCode for i32 {
    fn into_exit_code(self) -> i32 {
        self
    }
}

impl IntoExitCode for u8 {
    fn into_exit_code(self) -> i32 {
        i32::from(self)
    }
}

impl<T: IntoExitCode, E: fmt::Debug> IntoExitCode for core::result::Result<T, E> {
    fn into_exit_code(self) -> i32 {
        match self {
            Ok(t) => t.into_exit_code(),
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

/// Exit code of a child whose closure panicked (Python's code for an uncaught exception).
pub const PANIC_EXIT_CODE: i32 = 1;

/// Ends a forked child: Python's exit behaviour for its own children, flush, `_exit`.
pub(crate) fn exit_child(code: i32) -> ! {
    registry::cleanup_at_exit();
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    os::exit_now(code)
}
