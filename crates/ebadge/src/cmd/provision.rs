//! `ebadge provision REGISTRY [--dry-run]`: make the broker match the registry.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use ebadge_admin::pki::Pki;
use ebadge_admin::provision::{self, export_definitions};
use ebadge_admin::registry::Registry;

use super::ProfileArg;
use crate::output::{self, Status};

/// Arguments of `provision`.
#[derive(Args)]
pub struct ProvisionArgs {
    /// The registry file (TOML: [[entity]], [[heh]], [[link]], [[group]], [options]).
    pub registry: PathBuf,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the RabbitMQ definitions the registry implies to FILE (for loading at boot) and stop.
    #[arg(long, value_name = "FILE")]
    pub export_definitions: Option<PathBuf>,
    /// With --export-definitions: the number of nodes of the cluster the file is for (more than
    /// one makes every inbox but the HEHs' a quorum queue when the registry says
    /// queue_type = "auto").
    #[arg(long, default_value_t = 1, requires = "export_definitions")]
    pub cluster_nodes: usize,
    /// Print the plan as one JSON object {"add":[..],"change":[..],"remove":[..],"applied":bool}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// Runs `provision`.
pub async fn run(args: ProvisionArgs) -> Result<Status> {
    let registry = Registry::load(&args.registry)?;
    if let Some(file) = &args.export_definitions {
        let defs = export_definitions(&registry, args.cluster_nodes);
        std::fs::write(file, serde_json::to_string_pretty(&defs)?)
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "wrote the definitions of {} entities to {}",
            registry.entities().count(),
            file.display()
        );
        return Ok(Status::Ok);
    }
    let (profile, client) = args.profile.admin()?;
    let management = &profile.management;
    let started = Instant::now();
    let plan = provision::plan(&client, management, &registry).await?;
    if args.json {
        let mut value = serde_json::to_value(&plan)?;
        value["applied"] = (!args.dry_run && !plan.is_empty()).into();
        output::json(&value)?;
    } else {
        for line in plan.lines() {
            output::line(line);
        }
    }
    if !args.json {
        eprintln!(
            "plan: {} to add, {} to change, {} to remove",
            plan.add.len(),
            plan.change.len(),
            plan.remove.len()
        );
    }
    if args.dry_run {
        return Ok(Status::Ok);
    }
    if !plan.is_empty() {
        let mut last = Instant::now();
        plan.apply(management, |done, total| {
            if !args.json && (last.elapsed().as_secs() >= 1 || done == total) {
                eprintln!("applied {done}/{total}");
                last = Instant::now();
            }
        })
        .await?;
    }
    // A local PKI issues the certificates of new entities, so `--as NAME` works at once.
    if let Some(ca_key) = &profile.ca_key
        && ca_key.exists()
    {
        let pki = Pki::new(ca_key.parent().unwrap_or(std::path::Path::new(".")));
        let issued = pki.issue_missing(registry.entities().map(|e| e.as_str()))?;
        if issued > 0 && !args.json {
            eprintln!(
                "issued {issued} client certificates in {}",
                pki.clients().display()
            );
        }
    }
    if !args.json {
        eprintln!(
            "{} in {:.1} s",
            if plan.is_empty() {
                "nothing to do"
            } else {
                "done"
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Status::Ok)
}
