//! One module per subcommand.

pub mod msg;
