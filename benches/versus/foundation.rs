//! Rows for the foundation section.
use crate::common::Ctx;

pub fn run(_ctx: &mut Ctx) {}
