use super::*;
use std::process::Command;

/// Ask the system's crypt(3) (through Python 3.11's `crypt` module, or `openssl passwd` when
/// that is missing) to hash `password` with the salt/setting of `hash`.
fn system_crypt(password: &str, hash: &str) -> String {
    let py = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]))",
            password,
            hash,
        ])
        .output();
    if let Ok(out) = py {
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
    }
    let (alg, rest) = hash[1..].split_once('$').expect("a $n$ hash");
    let salt = rest.split('$').next().unwrap();
    let out = Command::new("openssl")
        .args(["passwd", &format!("-{alg}"), "-salt", salt, password])
        .output()
        .expect("python3 (with the crypt module) or openssl must be installed for this test");
    assert!(out.status.success(), "openssl passwd failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn hashes_verify_with_system_crypt() {
    for method in [CryptMethod::Md5, CryptMethod::Sha256, CryptMethod::Sha512] {
        for pw in [
            "T3mp@dm1n!",
            "",
            "päss wörd with spaces and a long tail 0123456789abcdef",
        ] {
            let h = hash_password(pw, method);
            assert!(h.starts_with(method.prefix()), "{h}");
            let salt = h[3..].split('$').next().unwrap();
            assert_eq!(salt.len(), method.salt_len(), "{h}");
            assert!(
                !h.contains("rounds="),
                "default rounds are not written: {h}"
            );
            assert_eq!(system_crypt(pw, &h), h, "{method:?} {pw:?}");
        }
    }
}

#[test]
fn salts_are_random() {
    let a = hash_password("same", CryptMethod::Sha512);
    let b = hash_password("same", CryptMethod::Sha512);
    assert_ne!(a, b);
}

#[test]
fn fixed_salt_and_known_vector() {
    // The glibc sha512-crypt test vector.
    assert_eq!(
        crypt_with_salt("Hello world!", CryptMethod::Sha512, "saltstring").unwrap(),
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    );
    assert_eq!(
        crypt_with_salt("x", CryptMethod::Md5, "0123456789").unwrap(),
        system_crypt("x", "$1$01234567$")
    );
    assert_eq!(
        crypt_with_salt("x", CryptMethod::Sha512, "bad$salt"),
        Err(CryptError::InvalidSalt)
    );
}
