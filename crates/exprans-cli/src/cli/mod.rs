//! Subcommands of the `exprans` binary that need more than a few lines.

pub mod bench;
pub mod generate;
pub mod gpu;
pub mod info;
pub mod shaders;
