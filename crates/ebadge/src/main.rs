//! `ebadge`: the command line of the eBADGE bus. A thin clap layer; each subcommand lives in its
//! own module under `cmd/`, and what they print and how they exit is `output`'s.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod output;

/// The eBADGE message bus: messages, the local broker, certificates, provisioning.
///
/// Every command that reads messages takes one JSON message per line, from a file or from
/// standard input ("-").
#[derive(Parser)]
#[command(name = "ebadge", version, about, long_about = None, propagate_version = true)]
#[command(after_help = output::exit_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check messages against the eBADGE data model (D3.1.3) and print JSON Schemas.
    #[command(subcommand)]
    Msg(cmd::msg::MsgCommand),
    /// The local TLS broker: Debian's rabbitmq-server under our supervisor.
    #[command(subcommand)]
    Broker(cmd::broker::BrokerCommand),
    /// Certificates: the CA and one client certificate per entity (CN = entity name).
    #[command(subcommand)]
    Pki(cmd::pki::PkiCommand),
    /// Create what a registry implies (users, permissions, exchanges, inboxes, policies); prints
    /// the plan; a second run changes nothing.
    ///
    /// Example: ebadge provision registry.toml --dry-run
    Provision(cmd::provision::ProvisionArgs),
    /// Check a live broker against the conventions; exit 1 on any violation.
    Audit(cmd::audit::AuditArgs),
    /// Remove an entity's rights now: permissions, user and open connections.
    Revoke(cmd::revoke::RevokeArgs),
    /// Validate and send JSON messages (one per line) as NAME to PEER, waiting for confirms.
    ///
    /// Exit status: 0 all confirmed, 1 a line was invalid, 3 confirms did not come in time,
    /// 4 the broker refused messages for good (each printed with its reason).
    ///
    /// Example: echo '{"msg":"get_capabilities"}' | ebadge send --as vpp --to heh-b827ebea02c1
    Send(cmd::send::SendArgs),
    /// Print the messages arriving in NAME's inbox (acknowledging each).
    Listen(cmd::listen::ListenArgs),
    /// A live copy of NAME's incoming stream through a temporary private queue.
    Tap(cmd::tap::TapArgs),
    /// The main job: local broker, provisioning, an HEH fleet and a VPP, the market, a summary.
    ///
    /// Example: ebadge demo --hehs 100 --seconds 60
    Demo(cmd::demo::DemoArgs),
    /// Simulated actors: HEH fleets, a VPP, the market.
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
    /// The seed's three performance figures (D3.2.3 2.1): ingest, activations, heh.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// The conformance kit: run a partner's client (any language) against the bus and check it,
    /// rule by rule.
    #[command(subcommand)]
    Conformance(cmd::conformance::ConformanceCommand),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Colour in logs only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    output::quiet_on_broken_pipe();
    // Logs go to stderr, filtered by EBADGE_LOG (e.g. EBADGE_LOG=ebadge_bus=debug); warnings by default.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBADGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Msg(command) => cmd::msg::run(command),
        Command::Pki(command) => cmd::pki::run(command),
        Command::Broker(command) => runtime().and_then(|rt| rt.block_on(cmd::broker::run(command))),
        Command::Provision(args) => runtime().and_then(|rt| rt.block_on(cmd::provision::run(args))),
        Command::Audit(args) => runtime().and_then(|rt| rt.block_on(cmd::audit::run(args))),
        Command::Revoke(args) => runtime().and_then(|rt| rt.block_on(cmd::revoke::run(args))),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(cmd::send::run(args))),
        Command::Listen(args) => runtime().and_then(|rt| rt.block_on(cmd::listen::run(args))),
        Command::Tap(args) => runtime().and_then(|rt| rt.block_on(cmd::tap::run(args))),
        Command::Sim(command) => runtime().and_then(|rt| rt.block_on(cmd::sim::run(command))),
        Command::Conformance(command) => {
            runtime().and_then(|rt| rt.block_on(cmd::conformance::run(command)))
        }
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(cmd::demo::run(args))),
        Command::Bench(cmd::bench::BenchCommand::Child(
            cmd::bench_child::ChildRole::HehChild {
                seconds,
                rate,
                profile,
            },
        )) => cmd::bench_child::heh_child(seconds, rate, &profile),
        Command::Bench(command) => runtime().and_then(|rt| rt.block_on(cmd::bench::run(command))),
    };
    output::exit(result)
}
