//! Rows for the sync section.
use crate::common::Ctx;

pub fn run(_ctx: &mut Ctx) {}
