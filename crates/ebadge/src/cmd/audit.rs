//! `ebadge audit`: check a live broker against the conventions.

use anyhow::{Context, Result};
use clap::Args;

use super::ProfileArg;
use crate::output::{self, Format, Status};

/// Arguments of `audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// One JSON object per violation: {"kind":..,"detail":..}.
    #[arg(long, conflicts_with = "metrics")]
    pub json: bool,
    /// Print Prometheus metrics instead (violations by kind, certificate expiry), for
    /// node_exporter's textfile collector:
    /// `ebadge audit --metrics > ebadge.prom.tmp && mv ebadge.prom.tmp /var/lib/prometheus/node-exporter/ebadge.prom`.
    /// Exits 0 whether or not there are violations (the metrics carry them).
    #[arg(long)]
    pub metrics: bool,
    /// The PKI whose certificates' expiry --metrics reports (default: the directory of the
    /// profile's CA).
    #[arg(long, value_name = "DIR", requires = "metrics")]
    pub pki: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `audit`: exit 0 when the broker conforms, 1 on any violation.
pub async fn run(args: AuditArgs) -> Result<Status> {
    let (profile, client) = args.profile.admin()?;
    let management = profile.management;
    let violations = ebadge_admin::audit::audit(&client, &management).await?;
    if args.metrics {
        let pki = args
            .pki
            .or_else(|| profile.client.ca.parent().map(ToOwned::to_owned))
            .unwrap_or_default();
        let certificates = ebadge_admin::pki::Pki::new(&pki).list().with_context(|| {
            format!(
                "reading the certificates in {} (choose the PKI with --pki DIR)",
                pki.display()
            )
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        output::text(ebadge_admin::audit::metrics_text(
            &violations,
            &certificates,
            now,
        ));
        return Ok(Status::Ok);
    }
    let format = Format::json_if(args.json);
    for v in &violations {
        format.print(v, || format!("VIOLATION {}: {}", v.kind, v.detail))?;
    }
    if violations.is_empty() {
        eprintln!("audit: the broker follows the conventions");
    } else {
        eprintln!("audit: {} violations", violations.len());
    }
    Ok(Status::held(violations.is_empty()))
}
