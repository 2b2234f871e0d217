//! The client under test: the files it is given (its certificate as PEM and as PKCS#12, the
//! bus CA, a connection profile), the environment that names them, and its process.

use super::KitError;
use ebadge_bus::{EntityName, Profile};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The password of the PKCS#12 file: the file is as secret as the PEM key beside it (both
/// 0600, in a 0700 directory), so the password protects nothing; Java's and .NET's key stores
/// just want one.
pub const PKCS12_PASSWORD: &str = "ebadge";

/// The environment a client under test is started with: every name is `EBADGE_*`, so that a
/// partner's program reads the same names whatever its language. docs/partners.md lists them.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// `amqps://127.0.0.1:PORT`: the kit's link to the broker, which it cuts.
    pub url: String,
    /// The bus CA (PEM).
    pub ca: PathBuf,
    /// The client's certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, PKCS#8).
    pub key: PathBuf,
    /// Certificate, key and CA in one PKCS#12 file, for Java and .NET.
    pub pkcs12: PathBuf,
    /// A connection profile (`ebadge_bus::Profile`) for clients built on this project.
    pub profile: PathBuf,
    /// Its entity name (the certificate's CN).
    pub name: EntityName,
    /// An HEH's controller: the kit.
    pub controller: Option<EntityName>,
    /// A VPP's HEHs: the kit's.
    pub hehs: Vec<EntityName>,
}

impl ClientFiles {
    /// Writes the files for `name` into `dir`, from `bus` (the broker's profile, which holds the
    /// certificates) and the link's address; `controller` and `hehs` name the kit's entities.
    pub fn write(
        dir: &Path,
        bus: &Profile,
        link: std::net::SocketAddr,
        name: &EntityName,
        controller: Option<&EntityName>,
        hehs: &[EntityName],
    ) -> Result<ClientFiles, KitError> {
        let io = |what: String| move |e: std::io::Error| KitError::Files(format!("{what}: {e}"));
        claim(dir)?;
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).map_err(io(format!("creating {}", certs.display())))?;
        let (their_cert, their_key) = bus.certificate(name.as_str());
        let cert = certs.join(format!("{name}.pem"));
        let key = certs.join(format!("{name}.key"));
        let ca = dir.join("ca.pem");
        for (from, to) in [(&their_cert, &cert), (&their_key, &key), (&bus.ca, &ca)] {
            // A copy onto itself would empty it (the broker's own CA, with a work directory
            // inside the broker's PKI).
            let same = match (std::fs::canonicalize(from), std::fs::canonicalize(to)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                return Err(KitError::Files(format!(
                    "{} is the broker's own file: choose another --work-dir",
                    to.display()
                )));
            }
            std::fs::copy(from, to).map_err(io(format!(
                "copying {} to {}",
                from.display(),
                to.display()
            )))?;
        }
        let pkcs12 = dir.join(format!("{name}.p12"));
        write_pkcs12(&cert, &key, &ca, &pkcs12)?;
        private(&pkcs12, 0o600)?;
        let url = format!("amqps://{link}");
        let profile_path = dir.join("profile.toml");
        let profile = Profile {
            amqps_url: url.clone(),
            ca: ca.clone(),
            certs,
            heartbeat_seconds: bus.heartbeat_seconds,
            max_message_bytes: bus.max_message_bytes,
        };
        profile
            .save(&profile_path)
            .map_err(io(format!("writing {}", profile_path.display())))?;
        Ok(ClientFiles {
            url,
            ca,
            cert,
            key,
            pkcs12,
            profile: profile_path,
            name: name.clone(),
            controller: controller.cloned(),
            hehs: hehs.to_vec(),
        })
    }

    /// The variables, as (name, value).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let (host, port) = self
            .url
            .trim_start_matches("amqps://")
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
            .unwrap_or_default();
        let path = |p: &Path| p.display().to_string();
        let mut all = vec![
            ("EBADGE_URL", self.url.clone()),
            ("EBADGE_HOST", host),
            ("EBADGE_PORT", port),
            ("EBADGE_CA", path(&self.ca)),
            ("EBADGE_CERT", path(&self.cert)),
            ("EBADGE_KEY", path(&self.key)),
            ("EBADGE_PKCS12", path(&self.pkcs12)),
            ("EBADGE_PKCS12_PASSWORD", PKCS12_PASSWORD.to_owned()),
            ("EBADGE_PROFILE", path(&self.profile)),
            ("EBADGE_NAME", self.name.to_string()),
            // Tells a wrapper script it runs under the kit (docs/partners/agent.sh rewrites
            // files beside EBADGE_PROFILE only then).
            ("EBADGE_KIT", "1".to_owned()),
        ];
        if let Some(controller) = &self.controller {
            all.push(("EBADGE_CONTROLLER", controller.to_string()));
        }
        if !self.hehs.is_empty() {
            let names: Vec<&str> = self.hehs.iter().map(EntityName::as_str).collect();
            all.push(("EBADGE_HEHS", names.join(",")));
        }
        all
    }
}

/// Certificate, key and CA chain as PKCS#12, by `openssl pkcs12` (Debian's `openssl`; Java 17
/// and .NET read what OpenSSL 3 writes).
fn write_pkcs12(cert: &Path, key: &Path, ca: &Path, out: &Path) -> Result<(), KitError> {
    let output = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-in"])
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-certfile")
        .arg(ca)
        .arg("-out")
        .arg(out)
        .args(["-passout", &format!("pass:{PKCS12_PASSWORD}")])
        .output()
        .map_err(|e| {
            KitError::Files(format!(
                "running openssl for the PKCS#12 file: {e}; install it ('apt-get install -y openssl')"
            ))
        })?;
    if !output.status.success() {
        return Err(KitError::Files(format!(
            "openssl pkcs12 -export failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// The running client: its own process group, so that a shell's children stop with it. Dropped
/// without [`ClientProcess::stop`] (a kit interrupted, a panic), the group is killed.
pub struct ClientProcess {
    child: Child,
    /// The group, known from the start: the leader may be reaped before the rest stop.
    pgid: Option<u32>,
    stopped: bool,
}

impl ClientProcess {
    /// Runs `command` with `sh -c` (a partner's command line as they would type it), with the
    /// files' environment, its output into `log`.
    pub fn start(command: &str, files: &ClientFiles, log: &Path) -> Result<Self, KitError> {
        let out = std::fs::File::create(log)
            .map_err(|e| KitError::Files(format!("creating {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| KitError::Files(format!("{}: {e}", log.display())))?;
        let mut command_line = Command::new("sh");
        #[cfg(unix)]
        command_line.process_group(0);
        let child = command_line
            .args(["-c", command])
            .envs(files.environment())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| KitError::Start(format!("sh -c {command:?}: {e}")))?;
        let pgid = child.id();
        Ok(ClientProcess {
            child,
            pgid,
            stopped: false,
        })
    }

    /// `Some(status)` once it has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to its group; once the client ended, or after `grace`, SIGKILL to what is left
    /// of the group (a device program that ignores SIGTERM must not outlive the run).
    pub async fn stop(mut self, grace: std::time::Duration) {
        if let Some(pgid) = self.pgid {
            signal_group("TERM", pgid);
            let _ = tokio::time::timeout(grace, self.child.wait()).await;
            signal_group("KILL", pgid);
        }
        let _ = self.child.kill().await;
        self.stopped = true;
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if !self.stopped
            && let Some(pgid) = self.pgid
        {
            signal_group("KILL", pgid);
        }
    }
}

/// `kill -s SIGNAL -- -PGID` (Unix). Each part matters: procps' `kill -TERM -12345` reads
/// `-12345` as an option and signals process group 1, that is every process it may
/// (kill(-1, …)); groups 0 and 1 are never signalled.
fn signal_group(signal: &str, pgid: u32) {
    if cfg!(unix) && pgid > 1 {
        let _ = std::process::Command::new("kill")
            .args(["-s", signal, "--", &format!("-{pgid}")])
            .status();
    }
}

/// Makes `dir` the kit's: created owner-only (it holds a private key), or an existing one the
/// kit made before (its mark), or empty. Anything else, a broker's directory for one, is refused.
fn claim(dir: &Path) -> Result<(), KitError> {
    const MARK: &str = ".ebadge-conformance";
    let fail = |e: std::io::Error| KitError::Files(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let empty = std::fs::read_dir(dir).map_err(fail)?.next().is_none();
    if !empty && !dir.join(MARK).exists() {
        return Err(KitError::Files(format!(
            "{} is not empty and not the kit's: choose another --work-dir (or an empty one)",
            dir.display()
        )));
    }
    std::fs::write(dir.join(MARK), "the conformance kit's work directory\n").map_err(fail)?;
    private(dir, 0o700)
}

/// Sets `mode` on `path` (Unix).
fn private(path: &Path, mode: u32) -> Result<(), KitError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| KitError::Files(format!("{}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The last `lines` lines of the client's log, for a failure's reason.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: &str) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    }

    #[tokio::test]
    async fn stopping_a_client_ends_its_whole_group_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let files = ClientFiles {
            url: "amqps://127.0.0.1:1".into(),
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("c.pem"),
            key: dir.path().join("c.key"),
            pkcs12: dir.path().join("c.p12"),
            profile: dir.path().join("profile.toml"),
            name: EntityName::new("heh-1").unwrap(),
            controller: None,
            hehs: Vec::new(),
        };
        let pids = dir.path().join("pids");
        // A shell with a child of its own that ignores SIGTERM: the group's SIGKILL ends it.
        let command = format!(
            "sh -c 'trap \"\" TERM; echo $$ >> {p}; sleep 300' & echo $$ >> {p}; wait",
            p = pids.display()
        );
        let bystander = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        let client = ClientProcess::start(&command, &files, &dir.path().join("log")).unwrap();
        let mut started = Vec::new();
        for _ in 0..50 {
            started = std::fs::read_to_string(&pids)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if started.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(started.len(), 2, "both shells started");
        client.stop(std::time::Duration::from_millis(500)).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for pid in &started {
            assert!(!alive(pid), "{pid} of the client's group is gone");
        }
        assert!(
            alive(&bystander.id().to_string()),
            "a process outside the group lives on"
        );
        let mut bystander = bystander;
        let _ = bystander.kill();
        let _ = bystander.wait();
    }

    #[test]
    fn a_work_directory_is_the_kits_only_if_new_empty_or_marked() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("new");
        claim(&new).unwrap();
        let mode = std::fs::metadata(&new).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "owner-only: it holds a key");
        std::fs::write(new.join("client.log"), "").unwrap();
        claim(&new).expect("the kit's own, used again");

        let theirs = root.path().join("broker");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("profile.toml"), "").unwrap();
        let refused = claim(&theirs).unwrap_err().to_string();
        assert!(refused.contains("not the kit's"), "{refused}");
        assert!(!theirs.join(".ebadge-conformance").exists());
    }
}
