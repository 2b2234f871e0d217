//! One module per subcommand.

pub mod broker;
pub mod msg;
pub mod pki;
