//! Build script: records the git commit the binary is built from in `IZYRT_GIT_COMMIT`
//! (`izyrt --version` prints it), or `unknown` when the source is not a git checkout or
//! git is missing (a crate tarball, a distribution build).
//!
//! Cargo re-runs it when HEAD moves: on `HEAD` itself (a checkout of another branch or
//! commit) and on the file of the branch it points to (a new commit), both found through
//! git because a worktree keeps them in different directories.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    if commit.is_some() {
        if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
            println!(
                "cargo:rerun-if-changed={}",
                PathBuf::from(dir).join("HEAD").display()
            );
        }
        if let (Some(common), Some(reference)) = (
            git(&["rev-parse", "--git-common-dir"]),
            git(&["symbolic-ref", "-q", "HEAD"]),
        ) {
            let common = PathBuf::from(common);
            // A branch whose ref was packed lives in packed-refs instead. Only existing
            // files are named: Cargo re-runs on every build for a missing one.
            for file in [common.join(&reference), common.join("packed-refs")] {
                if file.exists() {
                    println!("cargo:rerun-if-changed={}", file.display());
                }
            }
        }
    }
    println!(
        "cargo:rustc-env=IZYRT_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
