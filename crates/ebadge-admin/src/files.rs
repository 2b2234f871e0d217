//! File modes where the platform has them: keys, cookies and profiles are owner-only (0600) on
//! Unix. Elsewhere (the Windows builds of the clients, which never write a secret of the
//! broker's) a file gets the platform's default, its directory's access list.

use std::fs::{File, OpenOptions};

/// `options` creating files with `mode` (Unix); unchanged elsewhere.
pub(crate) fn create_with_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Gives the open `file` exactly `mode` (Unix), whatever it had: the mode `open` applies only
/// to a file it creates.
pub(crate) fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}
