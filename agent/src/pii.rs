//! Pseudonymisation of personal data columns: keyed HMAC, generalisation and truncation.
//!
//! Owns the pseudonym key file (it must not be readable by group or others) and the value
//! transforms of `pii = hmac | year | truncate:N`. `drop` needs no code: the column is simply not
//! written. The key is never logged or written anywhere.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read pseudonym key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "pseudonym key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "pseudonym key file {path} holds {len} bytes; at least 32 are needed (e.g. head -c 32 /dev/urandom | base64 > key)"
    )]
    TooShort { path: PathBuf, len: usize },
}

/// The secret key of keyed pseudonyms.
#[derive(Clone)]
pub struct PseudonymKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// Loads the key: the file's bytes without trailing ASCII whitespace, at least 32 bytes,
    /// from a file no one but its owner can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.into(),
                mode,
            });
        }
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end < 32 {
            return Err(KeyError::TooShort {
                path: path.into(),
                len: end,
            });
        }
        Ok(Self::from_bytes(&bytes[..end]))
    }

    pub fn from_bytes(key: &[u8]) -> Self {
        // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        Self { mac }
    }

    /// Lowercase hex HMAC-SHA256 of `value`, appended to `out`.
    pub fn pseudonym_into(&self, value: &[u8], out: &mut String) {
        let mut mac = self.mac.clone();
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in tag {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The first `n` characters of `s`.
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hmac_is_keyed_and_deterministic() {
        let k1 = PseudonymKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let k2 = PseudonymKey::from_bytes(b"another key of thirty-two bytes!");
        let h = |k: &PseudonymKey, v: &str| {
            let mut s = String::new();
            k.pseudonym_into(v.as_bytes(), &mut s);
            s
        };
        assert_eq!(h(&k1, "P0000000001"), h(&k1, "P0000000001"));
        assert_ne!(h(&k1, "P0000000001"), h(&k2, "P0000000001"));
        assert_ne!(h(&k1, "P0000000001"), h(&k1, "P0000000002"));
        assert_eq!(h(&k1, "x").len(), 64);
        // RFC 4231 test case 2
        let k = PseudonymKey::from_bytes(b"Jefe");
        assert_eq!(
            h(&k, "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn key_file_must_be_private_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = PseudonymKey::load(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = PseudonymKey::load(&p).unwrap();
        let mut a = String::new();
        k.pseudonym_into(b"x", &mut a);
        let mut b = String::new();
        PseudonymKey::from_bytes(b"0123456789abcdef0123456789abcdef").pseudonym_into(b"x", &mut b);
        assert_eq!(a, b, "trailing newline is not part of the key");
        std::fs::write(&p, "short\n").unwrap();
        assert!(
            PseudonymKey::load(&p)
                .unwrap_err()
                .to_string()
                .contains("at least 32")
        );
        assert!(PseudonymKey::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("69003", 2), "69");
        assert_eq!(truncate_chars("Évry", 2), "Év");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}
