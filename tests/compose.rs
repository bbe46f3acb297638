//! docker-compose.yml cannot run here (no Docker engine); check its shape.

use serde_yaml::Value;

use crate::helpers::root;

#[test]
fn compose_file_has_every_service_with_a_health_check() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let services = doc["services"].as_mapping().expect("services");
    for name in ["postgres", "redis", "rabbitmq", "paygate"] {
        let service = &services[&Value::from(name)];
        assert!(service.is_mapping(), "service {name} missing");
        let test = &service["healthcheck"]["test"];
        assert!(
            test.is_sequence() && !test.as_sequence().unwrap().is_empty(),
            "{name} has no health check"
        );
    }
    let depends = services[&Value::from("paygate")]["depends_on"]
        .as_mapping()
        .expect("paygate depends_on");
    for dep in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(
            depends[&Value::from(dep)]["condition"],
            Value::from("service_healthy"),
            "{dep}"
        );
    }
    let init = std::fs::read_to_string(root().join("docker/postgres-init.sql")).unwrap();
    for db in ["merchants", "providers", "logs"] {
        assert!(
            init.contains(&format!("CREATE DATABASE {db};")),
            "{db} not created"
        );
    }
}
