//! The node key: the ed25519 key that signs this node's records (its
//! origin). Kept in `node.key` in the data directory, hex, mode 0600; it is
//! never logged or printed, and `Debug` shows only the public half.

use ed25519_dalek::SigningKey;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use caravan_records::Origin;

pub const KEY_FILE: &str = "node.key";
/// The node's network identity (its libp2p PeerId), apart from the origin:
/// the nodes of a replica group will share an origin, never a PeerId.
pub const NET_KEY_FILE: &str = "net.key";

pub struct NodeKey(SigningKey);

impl NodeKey {
    pub fn generate() -> NodeKey {
        NodeKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn origin(&self) -> Origin {
        Origin(self.0.verifying_key().to_bytes())
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// Writes a new key file; refuses to overwrite one.
    pub fn create(dir: &Path) -> std::io::Result<NodeKey> {
        NodeKey::create_named(dir, KEY_FILE)
    }

    /// Reads the key file, refusing one that others can read.
    pub fn load(dir: &Path) -> Result<NodeKey, KeyError> {
        NodeKey::load_named(dir, KEY_FILE)
    }

    /// The network key: read, or created on first use.
    pub fn load_or_create_net_key(dir: &Path) -> Result<NodeKey, KeyError> {
        if dir.join(NET_KEY_FILE).exists() {
            return NodeKey::load_named(dir, NET_KEY_FILE);
        }
        NodeKey::create_named(dir, NET_KEY_FILE)
            .map_err(|source| KeyError::Create { path: dir.join(NET_KEY_FILE), source })
    }

    /// The 32-byte secret seed, for building the libp2p identity.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Writes the key file of a key received from elsewhere (a group's
    /// owner key, through an invitation); refuses to overwrite one.
    pub fn install(dir: &Path, seed: [u8; 32]) -> std::io::Result<NodeKey> {
        NodeKey::write_named(dir, KEY_FILE, NodeKey(SigningKey::from_bytes(&seed)))
    }

    fn create_named(dir: &Path, name: &str) -> std::io::Result<NodeKey> {
        NodeKey::write_named(dir, name, NodeKey::generate())
    }

    fn write_named(dir: &Path, name: &str, key: NodeKey) -> std::io::Result<NodeKey> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(name))?;
        let hex: String = key.0.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        writeln!(file, "{hex}")?;
        file.sync_all()?;
        Ok(key)
    }

    fn load_named(dir: &Path, name: &str) -> Result<NodeKey, KeyError> {
        let path = dir.join(name);
        let unreadable = |source| KeyError::Read { path: path.clone(), source };
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyError::Exposed { path });
        }
        let text = std::fs::read_to_string(&path).map_err(unreadable)?;
        let text = text.trim();
        let bytes: Option<Vec<u8>> = (text.len() == 64)
            .then(|| (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect())
            .flatten();
        let seed: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or(KeyError::Malformed { path })?;
        Ok(NodeKey(SigningKey::from_bytes(&seed)))
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("creating {}: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    /// A secret key others can read is a secret no more.
    #[error("{} is readable by other users; run: chmod 600 {}", path.display(), path.display())]
    Exposed { path: PathBuf },
    #[error("{} does not hold a 64-hex-digit ed25519 seed", path.display())]
    Malformed { path: PathBuf },
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({:?})", self.origin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(NodeKey::load(dir.path()).unwrap().origin(), key.origin());
        assert!(NodeKey::create(dir.path()).is_err(), "never overwrites a key");
        assert!(!format!("{key:?}").contains(&hex_of(&key)), "Debug hides the secret");

        std::fs::set_permissions(dir.path().join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(NodeKey::load(dir.path()).unwrap_err().to_string().contains("chmod 600"));
    }

    fn hex_of(key: &NodeKey) -> String {
        key.0.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}
