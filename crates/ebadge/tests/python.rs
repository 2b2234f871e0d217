//! The Python package's own tests (`python/tests`, pytest) on the test brokers: the shared one
//! and the one that is restarted, both provisioned with the test registry (its `py-*`
//! entities). The package must be built and installed in `.venv` first (`make python`, which
//! `make test` runs before the Rust tests): pytest runs on the installed wheel, as a user would.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed package's Python files must be the tree's: a wheel built before an edit
/// would test old code.
fn installed_package_is_current(python: &Path) {
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import ebadge, os; print(os.path.dirname(ebadge.__file__))",
        ])
        .output()
        .expect("the virtual environment's python runs");
    assert!(
        output.status.success(),
        "the ebadge package is not installed in .venv: run `make python` (scripts/python.sh)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let installed = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    let source = workspace().join("python/ebadge");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py" || e == "pyi") {
            let theirs = std::fs::read(installed.join(path.file_name().unwrap())).ok();
            assert!(
                theirs == Some(std::fs::read(&path).unwrap()),
                "{} differs from the installed package in {}: run `make python` (scripts/python.sh) to build and install the wheel again",
                path.display(),
                installed.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_package_passes_its_tests_on_the_test_brokers() {
    ebadge_testkit::profile().await;
    let restart = ebadge_testkit::private_broker("ebadge-restart-broker").await;
    let root = workspace();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make python` (scripts/python.sh) to make the virtual environment and install the package",
        python.display()
    );
    installed_package_is_current(&python);
    let shared = ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir());
    let status = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(&root)
        .env("EBADGE_PROFILE", shared.profile_path())
        .env("EBADGE_RESTART_PROFILE", restart.profile_path())
        .env("EBADGE_RESTART_DIR", restart.dir())
        .env("EBADGE_BIN", env!("CARGO_BIN_EXE_ebadge"))
        .status()
        .await
        .expect("pytest starts");
    assert!(
        status.success(),
        "the Python tests failed (their report is above)"
    );
}
