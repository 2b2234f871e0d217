//! The Python package's message classes (`python/ebadge/messages.py`) are generated from the
//! model's field tables: this test fails when the committed file differs from what the model
//! generates now. `EBADGE_BLESS=1` writes the file instead.

use std::path::PathBuf;

#[test]
fn the_committed_python_classes_are_the_ones_the_model_generates() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/ebadge/messages.py");
    let generated = ebadge_model::python::module();
    if std::env::var_os("EBADGE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the model generates: run `EBADGE_BLESS=1 cargo test -p ebadge-model --test python_classes` and commit it",
        path.display()
    );
}
