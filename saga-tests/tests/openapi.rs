//! The edge against its own OpenAPI document: Schemathesis generates
//! requests from `/openapi.json` (valid ones and, in its negative mode,
//! invalid ones), sends them to a running platform, and checks that no
//! answer is a server error and every answer matches the document: status
//! codes, content types, headers and bodies.

use choreo_saga_tests::Platform;
use serde_json::Value;
use std::path::PathBuf;

/// The `st` binary `make schemathesis` installs.
fn schemathesis() -> anyhow::Result<PathBuf> {
    let bin = std::env::var_os("CHOREO_SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/choreo/schemathesis-4.32.5/bin/st")
        });
    anyhow::ensure!(
        bin.exists(),
        "no Schemathesis at {} (run `make schemathesis`)",
        bin.display()
    );
    Ok(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_answers_every_generated_request_as_its_document_says() -> anyhow::Result<()> {
    let st = schemathesis()?;
    let platform = Platform::start().await?;
    for (sku, price, stock) in [("TEA-01", 1_250, 1_000), ("CUP-02", 800, 1_000)] {
        platform.edge.set_product(sku, price, stock).await?;
    }
    platform.edge.set_wallet("alice", 1_000_000).await?;

    // The document itself: OpenAPI 3, every /v1 route behind the bearer
    // scheme, the probes open.
    let document: Value = reqwest::get(platform.edge.url("/openapi.json"))
        .await?
        .json()
        .await?;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = document["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            assert_eq!(secured, path.starts_with("/v1/"), "{method} {path}");
        }
    }
    assert!(paths.contains_key("/v1/orders/{id}/cancel"));

    // As an admin (every route is open to it) and as a customer (who meets
    // the 403s and 404s), with a fixed seed so a failure can be replayed.
    for token in [
        platform.token("saga-admin", true)?,
        platform.token("alice", false)?,
    ] {
        let output = tokio::process::Command::new(&st)
            .args(["--no-color", "run"])
            .arg(platform.edge.url("/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_headers_conformance,response_schema_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "25", "--seed", "42"])
            .args(["--generation-database", "none", "--request-timeout", "30"])
            // NUL and the other control characters in every string: the
            // caller's mistake, a 422, never a 5xx.
            .args([
                "--generation-allow-x00",
                "true",
                "--generation-codec",
                "utf-8",
            ])
            .output()
            .await?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "schemathesis found problems:\n{printed}"
        );
    }
    platform.stop().await
}
