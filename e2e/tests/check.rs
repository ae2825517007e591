//! `pier check`: offline validation of manifests.

use e2e::manifests::{backend, ingress_class, join, Endpoint, Ingress, PathType, NAMESPACE};
use e2e::{pier_check, TempDir};
use std::path::Path;

fn valid_manifests(dir: &Path) {
    let endpoint = Endpoint::ready("127.0.0.50:8080".parse().unwrap());
    std::fs::write(dir.join("class.yaml"), ingress_class()).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        join(&[
            backend(NAMESPACE, "svc-app", &[endpoint]),
            Ingress::new(NAMESPACE, "good-ingress")
                .route("app.example", "/", PathType::Prefix, "svc-app")
                .route("app.example", "/api", PathType::Exact, "svc-app")
                .to_yaml(),
        ]),
    )
    .unwrap();
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn valid_manifests_pass() {
    let dir = TempDir::new("check-valid");
    valid_manifests(dir.path());
    let out = pier_check(&[dir.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    // A single file is accepted as a path too.
    let out = pier_check(&[&dir.path().join("app.yaml"), &dir.path().join("class.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
fn invalid_ingress_fails_and_is_named() {
    let dir = TempDir::new("check-invalid");
    valid_manifests(dir.path());
    std::fs::write(
        dir.path().join("bad.yaml"),
        Ingress::new("team-a", "bad-ingress")
            .route(
                "bad.example",
                "api/no-leading-slash",
                PathType::Prefix,
                "svc-app",
            )
            .to_yaml(),
    )
    .unwrap();
    let out = pier_check(&[dir.path()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("team-a/bad-ingress"),
        "problem not named: {text}"
    );
    assert!(
        !text.contains("good-ingress"),
        "the valid Ingress was reported too: {text}"
    );

    // A valid path next to an invalid one still fails.
    let good = TempDir::new("check-mixed");
    valid_manifests(good.path());
    let out = pier_check(&[good.path(), &dir.path().join("bad.yaml")]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}
