//! The `roamhub` command: run a node, run a local demo federation, and talk to any node.
//!
//! - [`cli`]: the command line, grouped by noun;
//! - [`serve`]: `roamhub serve`, a node from flags, a TOML file and `ROAMHUB_*` variables;
//! - [`certs`]: `roamhub certs`, a development certificate authority in a folder;
//! - [`client`]: the client subcommands, with human or JSON output;
//! - [`services`]: registering, listing and certifying services;
//! - [`keystore`]: citizens' keys on the client side, and the folder that keeps them;
//! - [`membership`]: operator commands that change the Raft group;
//! - [`local`]: a federation of real node processes on loopback, for the demo and tests;
//! - [`demo`]: `roamhub demo`, the story of one citizen across three cities.

pub mod certs;
pub mod cli;
pub mod client;
pub mod demo;
pub mod keystore;
pub mod local;
pub mod membership;
pub mod serve;
pub mod services;
