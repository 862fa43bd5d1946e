//! Secrets as an operator hands them to refundd: files of their own, with
//! the permissions the test chooses (refundd refuses a key others can read).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `text` written to `dir/name`, readable as `mode` says: the file's path.
pub fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}
