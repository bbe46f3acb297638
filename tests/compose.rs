//! The image and the compose files cannot run here (no Docker engine); check
//! their shape: docker-compose.yml (the demo), docker-compose.production.yml
//! (paygate without the demo), the Dockerfile and .dockerignore.

use serde_yaml::Value;

use crate::helpers::root;

/// The seven secrets the production stack must be given: the host's, and
/// those the image's staged specs (plugins/demo) name.
const PRODUCTION_SECRETS: [&str; 7] = [
    "PAYGATE_INTERNAL_WEBHOOK_SECRET",
    "PAYGATE_STRIPE_SECRET_KEY",
    "PAYGATE_STRIPE_WEBHOOK_SECRET",
    "PAYGATE_ADYEN_API_KEY",
    "PAYGATE_ADYEN_HMAC_KEY",
    "PAYGATE_SECRETS_KEY",
    "PAYGATE_ADMIN_TOKEN",
];

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn yaml(file: &str) -> Value {
    serde_yaml::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let service = &doc["services"][name];
    assert!(service.is_mapping(), "service {name} missing");
    service
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The Dockerfile's instructions, each on one line: comments dropped and
/// continued lines joined.
fn dockerfile_instructions() -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => current.push_str(continued),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

fn dockerignore_patterns() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_matches('/').to_owned())
        .collect()
}

#[test]
fn compose_file_has_every_service_with_a_health_check() {
    let doc = yaml("docker-compose.yml");
    for name in ["postgres", "redis", "rabbitmq", "paygate"] {
        let test = &service(&doc, name)["healthcheck"]["test"];
        assert!(
            test.is_sequence() && !test.as_sequence().unwrap().is_empty(),
            "{name} has no health check"
        );
    }
    let depends = service(&doc, "paygate")["depends_on"]
        .as_mapping()
        .expect("paygate depends_on");
    for dep in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(
            depends[&Value::from(dep)]["condition"],
            Value::from("service_healthy"),
            "{dep}"
        );
    }
    let init = read("docker/postgres-init.sql");
    for db in ["merchants", "providers", "logs"] {
        assert!(
            init.contains(&format!("CREATE DATABASE {db};")),
            "{db} not created"
        );
    }
}

#[test]
fn the_demo_publishes_the_shop_the_sandbox_and_the_admin_port_on_loopback() {
    let doc = yaml("docker-compose.yml");
    let demo = service(&doc, "paygate");
    let ports = strings(&demo["ports"]);
    for port in ["8001:8001", "8002:8002", "127.0.0.1:9090:9090"] {
        assert!(ports.contains(&port), "{port} not published: {ports:?}");
    }
    // Published on every interface, the admin API would face the network.
    assert!(
        !ports
            .iter()
            .any(|p| p.ends_with(":9090") && !p.starts_with("127.0.0.1:")),
        "{ports:?}"
    );
    let env = &demo["environment"];
    assert_eq!(env["PAYGATE_ADMIN_LISTEN"], Value::from("0.0.0.0:9090"));
    assert!(env["PAYGATE_ADMIN_TOKEN"].is_string(), "no admin token");
}

#[test]
fn the_demo_health_check_asks_livez() {
    let doc = yaml("docker-compose.yml");
    let test = strings(&service(&doc, "paygate")["healthcheck"]["test"]);
    assert!(test.iter().any(|arg| arg.ends_with("/livez")), "{test:?}");
}

/// Compose interpolates every service of a file before it applies profiles:
/// one `${NAME:?}` in docker-compose.yml would stop the demo's `docker
/// compose up` for whoever has not set NAME.
#[test]
fn the_demo_file_requires_no_variable() {
    // Its values only, comments left out.
    let text = serde_yaml::to_string(&yaml("docker-compose.yml")).unwrap();
    for (at, _) in text.match_indices("${") {
        let rest = &text[at..];
        let expression = rest.find('}').map_or(rest, |end| &rest[..=end]);
        assert!(!expression.contains('?'), "{expression} is required");
    }
}

#[test]
fn the_production_stack_runs_paygate_serve_not_the_demo() {
    let doc = yaml("docker-compose.production.yml");
    let paygate = service(&doc, "paygate");
    assert_eq!(strings(&paygate["entrypoint"]), ["paygate"]);
    assert_eq!(strings(&paygate["command"]), ["serve"]);
    let services = doc["services"].as_mapping().expect("services");
    for (name, service) in services {
        let text = serde_yaml::to_string(service).unwrap();
        assert!(!text.contains("paygate-demo"), "{name:?} runs the demo");
        assert!(!text.contains("PAYGATE_DEMO"), "{name:?} runs the demo");
    }
}

#[test]
fn the_production_stack_sets_no_demo_secret() {
    let text = read("docker-compose.production.yml");
    let demo_values = paygate::config::DEMO_SECRETS
        .map(|(_, value)| value)
        .into_iter()
        .chain([paygate::sealing::DEMO_SECRETS_KEY, "demo-admin-token"]);
    for value in demo_values {
        assert!(!text.contains(value), "the demo's {value} is set");
    }
}

#[test]
fn the_production_stack_requires_each_secret_from_the_environment() {
    let doc = yaml("docker-compose.production.yml");
    let env = &service(&doc, "paygate")["environment"];
    for name in PRODUCTION_SECRETS {
        let value = env[name].as_str().unwrap_or_else(|| panic!("{name} unset"));
        assert!(
            value.starts_with(&format!("${{{name}:?")) && value.ends_with('}'),
            "{name} is {value:?}, not required with ${{{name}:?...}}"
        );
    }
}

#[test]
fn the_production_stack_shares_the_demo_backing_services_in_a_project_of_its_own() {
    let doc = yaml("docker-compose.production.yml");
    // The demo's project would hand it the demo's containers and database.
    assert_eq!(doc["name"], Value::from("paygate-production"));
    let depends = &service(&doc, "paygate")["depends_on"];
    for dep in ["postgres", "redis", "rabbitmq"] {
        let extends = &service(&doc, dep)["extends"];
        assert_eq!(extends["file"], Value::from("docker-compose.yml"), "{dep}");
        assert_eq!(extends["service"], Value::from(dep), "{dep}");
        assert_eq!(
            depends[dep]["condition"],
            Value::from("service_healthy"),
            "{dep}"
        );
    }
}

#[test]
fn the_image_runs_as_a_non_root_user() {
    let users: Vec<String> = dockerfile_instructions()
        .into_iter()
        .filter_map(|i| i.strip_prefix("USER ").map(|u| u.trim().to_owned()))
        .collect();
    let user = users.last().expect("no USER: the image runs as root");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&name), "USER {user}");
}

#[test]
fn the_image_health_check_asks_livez() {
    let instructions = dockerfile_instructions();
    let check = instructions
        .iter()
        .find(|i| i.starts_with("HEALTHCHECK "))
        .expect("no HEALTHCHECK");
    assert!(check.contains("/livez"), "{check}");
}

#[test]
fn the_image_builds_with_docker_build_image_steps() {
    let instructions = dockerfile_instructions();
    assert!(
        instructions
            .iter()
            .any(|i| i.starts_with("RUN ") && i.contains("docker/build-image-steps")),
        "no RUN of docker/build-image-steps: {instructions:#?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let script = std::fs::metadata(root().join("docker/build-image-steps")).unwrap();
    assert!(script.permissions().mode() & 0o111 != 0, "not executable");
}

#[test]
fn dockerignore_keeps_build_output_out_and_the_sources_in() {
    let patterns = dockerignore_patterns();
    assert!(patterns.iter().any(|p| p == "target"), "{patterns:?}");
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        ".cargo",
        "host",
        "plugin-registry",
        "plugins",
        "wit",
        "migrations",
        ".sqlx",
        "scripts",
        "docker",
        "tests",
    ];
    for path in needed {
        assert!(!patterns.iter().any(|p| p == path), "{path} left out");
    }
}
