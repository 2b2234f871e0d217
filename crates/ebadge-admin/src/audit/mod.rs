//! Audit: checks a live broker against the conventions of D3.2.3 5.3 and 6.1 and lists every
//! violation. Derives group membership from the live bindings, so it needs no registry.
//!
//! In two steps, so that the rules are tested without a broker: [`fetch`] reads a [`Snapshot`]
//! (all the I/O), and [`check`] applies the rules to it (pure). [`handles`] counts the nodes'
//! file handles, which the benchmarks read too.

mod check;
pub mod handles;
mod snapshot;

pub use check::{KINDS, Violation, check};
pub use snapshot::{Snapshot, fetch};

use crate::mgmt::{AdminClient, ApiError};
use crate::profile::Management;

/// Checks the broker. An empty list means it conforms.
pub async fn audit(
    client: &AdminClient,
    management: &Management,
) -> Result<Vec<Violation>, ApiError> {
    Ok(check(&fetch(client, management).await?))
}

/// The audit as Prometheus metrics (text format 0.0.4, as node_exporter's textfile collector
/// reads it): violations by kind, when the audit ran, and each certificate's expiry as a Unix
/// time. An expiry, unlike "days left", stays true however old the file gets; the alert
/// computes the days (`ebadge_certificate_expiry_timestamp_seconds - time()`).
///
/// ```
/// use ebadge_admin::audit::{Violation, metrics_text};
/// let found = [Violation { kind: "guest", detail: "the guest user exists".into() }];
/// let text = metrics_text(&found, &[], 1_700_000_000);
/// assert!(text.contains("ebadge_audit_violations{kind=\"guest\"} 1\n"));
/// assert!(text.contains("ebadge_audit_violations{kind=\"tls\"} 0\n"));
/// assert!(text.contains("ebadge_audit_timestamp_seconds 1700000000\n"));
/// ```
pub fn metrics_text(
    violations: &[Violation],
    certificates: &[crate::pki::CertInfo],
    now_unix: i64,
) -> String {
    use std::fmt::Write;
    let mut text = String::from(
        "# HELP ebadge_audit_violations Breaches of the bus conventions the last audit found, by kind.\n\
         # TYPE ebadge_audit_violations gauge\n",
    );
    for kind in KINDS {
        let n = violations.iter().filter(|v| v.kind == kind).count();
        let _ = writeln!(text, "ebadge_audit_violations{{kind=\"{kind}\"}} {n}");
    }
    let _ = write!(
        text,
        "# HELP ebadge_audit_timestamp_seconds When the audit ran (Unix time).\n\
         # TYPE ebadge_audit_timestamp_seconds gauge\n\
         ebadge_audit_timestamp_seconds {now_unix}\n"
    );
    if !certificates.is_empty() {
        text.push_str(
            "# HELP ebadge_certificate_expiry_timestamp_seconds When a certificate of the bus's PKI expires (Unix time).\n\
             # TYPE ebadge_certificate_expiry_timestamp_seconds gauge\n",
        );
    }
    for cert in certificates {
        let role = match cert.name.as_str() {
            "ca" | "server" => cert.name.as_str(),
            _ => "client",
        };
        let _ = writeln!(
            text,
            "ebadge_certificate_expiry_timestamp_seconds{{role=\"{role}\",name=\"{}\"}} {}",
            escape_label(&cert.common_name),
            cert.not_after_unix
        );
    }
    text
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
