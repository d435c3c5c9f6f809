//! The `multiproc` tool as a real binary.
