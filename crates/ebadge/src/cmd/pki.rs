//! `ebadge pki init/server/issue/revoke/list`: the CA, the client certificates (CN = entity
//! name) and their revocation list.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use ebadge_admin::pki::{DEFAULT_DAYS, Pki};

use crate::output::{self, Format, Status};

/// The `pki` subcommands. The PKI directory defaults to the local broker's (`.ebadge/pki`).
#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create the CA, the broker's server certificate and an empty CRL (if the CA exists, only
    /// a missing CRL is written).
    Init {
        /// PKI directory.
        #[arg(long, default_value = ".ebadge/pki")]
        dir: PathBuf,
        /// Names the broker is reached by (DNS names or IP addresses).
        #[arg(long = "server-name", default_values = ["localhost", "127.0.0.1", "::1"])]
        server_names: Vec<String>,
    },
    /// Re-issue the broker's server certificate (rotation, or new names), signed by the CA.
    /// RabbitMQ caches certificates: afterwards run `ebadge broker reload-tls` (local broker: it
    /// also checks that every node presents the new certificate) or
    /// `rabbitmqctl eval 'ssl:clear_pem_cache().'` on each node of a deployed cluster.
    ///
    /// Example: ebadge pki server --server-name mq.example.net --server-name 10.0.0.10
    Server {
        /// PKI directory.
        #[arg(long, default_value = ".ebadge/pki")]
        dir: PathBuf,
        /// Names the broker is reached by (DNS names or IP addresses).
        #[arg(long = "server-name", required = true)]
        server_names: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: i64,
    },
    /// Issue the client certificate of an entity: CN = NAME, files clients/NAME.pem and .key.
    ///
    /// Example: ebadge pki issue heh-b827ebea02c1
    Issue {
        /// The entity name (the broker username).
        name: String,
        /// PKI directory.
        #[arg(long, default_value = ".ebadge/pki")]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: i64,
    },
    /// Retire an entity's client certificate: its serial goes on the CA's revocation list (CRL),
    /// which the broker checks at every TLS handshake, and its files are removed. The old key is
    /// refused from then on, even if the name is provisioned again. `ebadge revoke` does this
    /// too when the profile holds the CA key. A deployed cluster reads the CRL from
    /// /etc/rabbitmq/tls/crl/: copy the printed file there on each node.
    ///
    /// Example: ebadge pki revoke heh-b827ebea02c1
    Revoke {
        /// The entity name.
        name: String,
        /// PKI directory.
        #[arg(long, default_value = ".ebadge/pki")]
        dir: PathBuf,
    },
    /// List the certificates with their expiry, then the revoked ones.
    List {
        /// PKI directory.
        #[arg(long, default_value = ".ebadge/pki")]
        dir: PathBuf,
        /// One JSON object per certificate.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `pki` subcommand.
pub fn run(command: PkiCommand) -> Result<Status> {
    match command {
        PkiCommand::Init { dir, server_names } => {
            let pki = Pki::new(&dir);
            if pki.init(&server_names)? {
                output::line(format_args!(
                    "created CA {} and the server certificate",
                    pki.ca_cert().display()
                ));
            } else {
                // A PKI made before revocation existed gets its (empty) CRL.
                pki.ensure_crl()?;
                output::line(format_args!(
                    "the CA exists already: {} (CRL {})",
                    pki.ca_cert().display(),
                    pki.crl_file().display()
                ));
            }
        }
        PkiCommand::Server {
            dir,
            server_names,
            days,
        } => {
            let (cert, key) = Pki::new(&dir).issue_server(&server_names, days)?;
            output::line(cert.display());
            output::line(key.display());
        }
        PkiCommand::Issue { name, dir, days } => {
            let (cert, key) = Pki::new(&dir).issue(&name, days)?;
            output::line(cert.display());
            output::line(key.display());
        }
        PkiCommand::Revoke { name, dir } => {
            let pki = Pki::new(&dir);
            match pki.revoke(&name)? {
                Some(revoked) => output::line(format_args!(
                    "revoked the certificate of {name} (serial {}); CRL: {} (broker directory {})",
                    revoked.serial,
                    pki.crl_file().display(),
                    pki.crl_dir().display()
                )),
                None => {
                    eprintln!(
                        "pki: {name} has no certificate in {}",
                        pki.clients().display()
                    );
                    return Ok(Status::Failed);
                }
            }
        }
        PkiCommand::List { dir, json } => {
            let pki = Pki::new(&dir);
            let format = Format::json_if(json);
            for cert in pki.list()? {
                format.print(&cert, || {
                    format!(
                        "{:<24} CN={:<24} expires {} ({} days)",
                        cert.name, cert.common_name, cert.not_after, cert.days_left
                    )
                })?;
            }
            for revoked in pki.revoked()?.revoked {
                format.print(&revoked, || {
                    format!(
                        "{:<24} serial {} {} {}",
                        revoked.name, revoked.serial, revoked.reason, revoked.revoked_at
                    )
                })?;
            }
        }
    }
    Ok(Status::Ok)
}
