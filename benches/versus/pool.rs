//! Rows for the pool section.
use crate::common::Ctx;

pub fn run(_ctx: &mut Ctx) {}
