//! The built binary's offline subcommands as a user runs them: `plan --offline`
//! (`plan_offline`), with `--slb-state` (`plan_steps_offline`), and `demo` (`demo_cli`).
//!
//! One test binary; each module was one test file. Run one with
//! `cargo test --test cli plan_offline::`.

mod demo_cli;
mod plan_offline;
mod plan_steps_offline;
