//! Files only their owner may read, for secrets a node or a client keeps on disk.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

/// What to do when the file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Fail: the file holds a secret that must not be replaced by accident.
    Refuse,
    Replace,
}

/// Writes `bytes` to a file with mode 0600 and fsyncs it.
pub fn write_owner_only(path: &Path, bytes: &[u8], if_exists: IfExists) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    match if_exists {
        IfExists::Refuse => options.create_new(true),
        IfExists::Replace => options.create(true).truncate(true),
    };
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
