//! Rows for the queue section.
use crate::common::Ctx;

pub fn run(_ctx: &mut Ctx) {}
