//! crypt(3) password hashes for the `1>s<1` (md5-crypt), `5>s<5` (sha256-crypt) and `6>s<6`
//! (sha512-crypt) markers. Like the original (`crypt.mksalt` + `crypt.crypt`): a random salt of
//! 8 (md5) or 16 (sha) characters from `./0-9A-Za-z`, default rounds (5000, not written).

use rand::Rng;

/// Hash method of a crypt marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptMethod {
    /// `$1$`, marker `1>…<1`.
    Md5,
    /// `$5$`, marker `5>…<5`.
    Sha256,
    /// `$6$`, marker `6>…<6`.
    Sha512,
}

impl CryptMethod {
    /// The salt length `crypt.mksalt` uses.
    pub fn salt_len(self) -> usize {
        match self {
            CryptMethod::Md5 => 8,
            CryptMethod::Sha256 | CryptMethod::Sha512 => 16,
        }
    }

    /// The `$n$` prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            CryptMethod::Md5 => "$1$",
            CryptMethod::Sha256 => "$5$",
            CryptMethod::Sha512 => "$6$",
        }
    }
}

const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random salt of the method's length.
pub fn random_salt(method: CryptMethod) -> String {
    let mut rng = rand::thread_rng();
    (0..method.salt_len())
        .map(|_| SALT_CHARS[rng.gen_range(0..SALT_CHARS.len())] as char)
        .collect()
}

/// Hash `password` with a fresh random salt (`hash_password`).
pub fn hash_password(password: &str, method: CryptMethod) -> String {
    let salt = random_salt(method);
    crypt_with_salt(password, method, &salt)
        .expect("a salt drawn from the crypt alphabet is always valid")
}

/// Hash `password` with the given salt (characters from `./0-9A-Za-z`, truncated to the
/// method's maximum of 8 or 16), default rounds. Errors when the salt has other characters.
pub fn crypt_with_salt(
    password: &str,
    method: CryptMethod,
    salt: &str,
) -> Result<String, CryptError> {
    if salt.bytes().any(|b| !SALT_CHARS.contains(&b)) {
        return Err(CryptError::InvalidSalt);
    }
    let salt: String = salt.chars().take(method.salt_len()).collect();
    let setup = format!("{}{}", method.prefix(), salt);
    #[allow(deprecated)]
    let out = match method {
        CryptMethod::Md5 => pwhash::md5_crypt::hash_with(setup.as_str(), password),
        CryptMethod::Sha256 => pwhash::sha256_crypt::hash_with(setup.as_str(), password),
        CryptMethod::Sha512 => pwhash::sha512_crypt::hash_with(setup.as_str(), password),
    };
    out.map_err(|_| CryptError::InvalidSalt)
}

/// A salt outside the crypt alphabet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    #[error("invalid crypt salt: use only the characters ./0-9A-Za-z")]
    InvalidSalt,
}

#[cfg(test)]
mod tests;
