//! Rows for the pipe section.
use crate::common::Ctx;

pub fn run(_ctx: &mut Ctx) {}
