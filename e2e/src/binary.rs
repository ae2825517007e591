//! Locating the `pier` binary under test, and running its one-shot subcommands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `pier` binary to test.
///
/// `PIER_BIN` when set; otherwise the `pier` next to the `deps` directory holding this test
/// executable (`target/<profile>/deps/<test>` → `target/<profile>/pier`). Panics with a hint
/// when the binary does not exist.
pub fn pier_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PIER_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "PIER_BIN={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("cannot find the test executable");
    let deps = exe
        .parent()
        .expect("test executable has no parent directory");
    let profile_dir = if deps.ends_with("deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    let path = profile_dir.join(format!("pier{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} does not exist: build it first with `cargo build -p pier-controller --bin pier` \
         (or set PIER_BIN)",
        path.display()
    );
    path
}

/// For benchmarks: test `target/release/pier` when it exists (and `PIER_BIN` is not set),
/// since figures from a debug build mean little; otherwise [`pier_bin`] decides as usual.
pub fn prefer_release_binary() {
    if std::env::var_os("PIER_BIN").is_some() {
        return;
    }
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/pier");
    if release.is_file() {
        std::env::set_var("PIER_BIN", release);
    }
}

/// Runs `pier check PATH…` to completion and returns its exit status and output.
pub fn pier_check(paths: &[&Path]) -> Output {
    Command::new(pier_bin())
        .arg("check")
        .args(paths)
        .output()
        .expect("cannot run pier check")
}

/// Whether `pier run --help` mentions `flag` (used for optional flags such as
/// `--https-listen`, so the harness works with builds that do not have them).
pub(crate) fn run_supports_flag(flag: &str) -> bool {
    match Command::new(pier_bin()).args(["run", "--help"]).output() {
        Ok(out) => {
            String::from_utf8_lossy(&out.stdout).contains(flag)
                || String::from_utf8_lossy(&out.stderr).contains(flag)
        }
        Err(_) => false,
    }
}
